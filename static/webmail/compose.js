// Compose: autosave to Drafts every few seconds while something changed; upload progress.
(function () {
  "use strict";
  const AUTOSAVE_MS = 3000;
  let dirty = false;
  let saving = false;

  function form() { return document.getElementById("compose"); }

  function setField(f, name, value) {
    const input = f.querySelector('[name="' + name + '"]');
    if (input) input.value = value;
  }

  async function save() {
    const f = form();
    if (!f || !dirty || saving) return;
    saving = true;
    dirty = false;
    syncRich();
    const data = new FormData(f);
    data.delete("attachments");  // new uploads travel with Send, not with every autosave
    try {
      const resp = await fetch(f.dataset.draftUrl, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "X-CSRFToken": data.get("csrfmiddlewaretoken") },
      });
      if (resp.ok) {
        const out = await resp.json();
        setField(f, "draft", out.draft);
        setField(f, "keep_from", out.keep_from);
        setField(f, "keep", out.keep);
        const st = document.getElementById("draft-status");
        if (st) st.textContent = "Draft saved at " + out.saved_at;
      } else { dirty = true; }
    } catch (e) { dirty = true; }
    saving = false;
  }

  document.addEventListener("input", function (ev) {
    if (ev.target && ev.target.form && ev.target.form.id === "compose" && ev.target.type !== "file") dirty = true;
  });
  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest && ev.target.closest(".remove-kept");
    if (!btn) return;
    const f = form();
    const keep = f.querySelector('[name="keep"]');
    keep.value = keep.value.split(",").filter(function (p) { return p && p !== btn.dataset.part; }).join(",");
    btn.closest("li").remove();
    dirty = true;
  });
  document.addEventListener("htmx:xhr:progress", function (ev) {
    // Only the compose form's own request: the sidebar's live refreshes report progress too.
    if (!ev.target || !ev.target.closest || !ev.target.closest("#compose")) return;
    const bar = document.getElementById("upload-progress");
    if (bar && ev.detail.lengthComputable) {
      bar.hidden = false;
      bar.value = Math.round(ev.detail.loaded / ev.detail.total * 100);
      bar.setAttribute("aria-valuetext", "Uploading: " + bar.value + "%");
    }
  });
  function chosenSize(f) {
    let total = 0;
    const input = f.querySelector('input[type=file][name="attachments"]');
    if (input) Array.from(input.files).forEach(function (file) { total += file.size; });
    return total;
  }
  function formError(f, text) {
    let box = document.getElementById("send-error");
    if (!box) {
      box = document.createElement("div");
      box.id = "send-error";
      box.className = "error";
      box.setAttribute("role", "alert");
      f.insertBefore(box, f.querySelector(".actions"));
    }
    box.textContent = text;
  }
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if (!ev.detail.elt || ev.detail.elt.id !== "compose") return;
    const f = form();
    const note = document.getElementById("limit-note");
    const limit = note ? Number(note.dataset.limit) : 0;
    if (limit && chosenSize(f) > limit) {
      // Nothing leaves: the server would refuse it after the whole upload.
      ev.preventDefault();
      formError(f, "Not sent: the attached files are over the limit of " + (limit / 1048576).toFixed(1) +
        " MB. Remove some and send again; everything you typed is still here.");
      f.querySelector('input[type=file][name="attachments"]').focus();
      return;
    }
    dirty = false;  // Send supersedes autosave
  });
  document.addEventListener("htmx:afterRequest", function (ev) {
    if (!ev.detail.elt || ev.detail.elt.id !== "compose") return;
    const bar = document.getElementById("upload-progress");
    if (bar && !ev.detail.successful) bar.hidden = true;
    if (ev.detail.successful || !ev.detail.xhr) return;
    const status = ev.detail.xhr.status;
    const f = form();
    dirty = true;  // what was typed is still here; keep saving it
    if (status === 413) {
      formError(f, "Not sent: the message is larger than the server accepts. Remove an attachment and send again; everything you typed is still here.");
    } else if (status === 0) {
      formError(f, "Not sent: the server could not be reached. Check your connection and send again; everything you typed is still here.");
    } else if (status >= 500 || status === 403) {
      formError(f, "Not sent: the server refused the request (" + status + "). Try again; everything you typed is still here.");
    }
  });
  // Rich text: a contenteditable editor mirrored into the hidden "html" field and, as plain
  // text, into the "Message" textarea (the text/plain alternative).
  function syncRich() {
    const f = form();
    const editor = document.getElementById("rich-editor");
    if (!f || !editor) return;
    const on = document.getElementById("rich-toggle").checked;
    f.querySelector('[name="html"]').value = on ? editor.innerHTML : "";
    if (on) f.querySelector('[name="body"]').value = editor.innerText;
  }
  function dropQuote(f) {
    // The quote travels by reference in rich text; once it is in the text (or removed), not.
    setField(f, "quote", "");
    setField(f, "quote_mode", "");
    const quoted = document.getElementById("quoted");
    if (quoted) quoted.remove();
  }
  document.addEventListener("change", function (ev) {
    if (!ev.target || ev.target.id !== "rich-toggle") return;
    const f = form();
    const on = ev.target.checked;
    const editor = document.getElementById("rich-editor");
    const body = f.querySelector('[name="body"]');
    if (on) {
      // The text field is what was last edited: the editor starts from it.
      editor.textContent = "";
      body.value.split("\n").forEach(function (line) {
        const div = document.createElement("div");
        if (line) div.textContent = line; else div.appendChild(document.createElement("br"));
        editor.appendChild(div);
      });
    } else {
      const quoteText = document.getElementById("quote-text");
      const quoteOn = quoteText && f.querySelector('[name="quote"]').value;
      body.value = editor.innerText.replace(/\s+$/, "") + (quoteOn ? "\n\n" + quoteText.value : "");
      if (quoteText) dropQuote(f);
    }
    f.querySelectorAll(".rich-only").forEach(function (el) { el.hidden = !on; });
    // Only the visible editor carries the name "Message".
    if (on) editor.setAttribute("aria-labelledby", "rich-label"); else editor.removeAttribute("aria-labelledby");
    f.querySelectorAll(".plain-only").forEach(function (el) { el.hidden = on; });
    syncRich();
    dirty = true;
  });
  document.addEventListener("click", function (ev) {
    if (!ev.target || ev.target.id !== "remove-quote") return;
    dropQuote(form());
    dirty = true;
  });
  document.addEventListener("input", function (ev) {
    if (ev.target && ev.target.id === "rich-editor") { syncRich(); dirty = true; }
  });
  document.addEventListener("click", function (ev) {
    const btn = ev.target.closest && ev.target.closest("[data-cmd]");
    if (!btn) return;
    const editor = document.getElementById("rich-editor");
    editor.focus();
    let value = null;
    if (btn.dataset.cmd === "createLink") {
      value = window.prompt("Link address (https://...)");
      if (!value) return;
    }
    document.execCommand(btn.dataset.cmd, false, value);
    syncRich();
    dirty = true;
  });
  document.addEventListener("htmx:configRequest", function (ev) {
    if (!ev.detail.elt || ev.detail.elt.id !== "compose") return;
    syncRich();
    const f = form();
    const params = ev.detail.parameters;
    ["html", "body"].forEach(function (name) {
      const value = f.querySelector('[name="' + name + '"]').value;
      if (params instanceof FormData) params.set(name, value); else params[name] = value;
    });
  });
  // Say at once when the chosen files are over the limit (the server checks again).
  document.addEventListener("change", function (ev) {
    if (!ev.target || ev.target.type !== "file" || !ev.target.form || ev.target.form.id !== "compose") return;
    const note = document.getElementById("limit-note");
    const limit = Number(note.dataset.limit);
    let total = 0;
    Array.from(ev.target.files).forEach(function (file) { total += file.size; });
    const over = total > limit;
    note.classList.toggle("error", over);
    note.setAttribute("role", over ? "alert" : "status");
    note.textContent = over
      ? "These files come to " + (total / 1048576).toFixed(1) + " MB; the limit is " + (limit / 1048576).toFixed(1) + " MB."
      : "Up to " + (limit / 1048576).toFixed(1) + " MB in total.";
  });
  setInterval(save, AUTOSAVE_MS);
})();
