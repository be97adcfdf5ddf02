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
    const bar = document.getElementById("upload-progress");
    if (bar && ev.detail.lengthComputable) {
      bar.hidden = false;
      bar.value = Math.round(ev.detail.loaded / ev.detail.total * 100);
    }
  });
  document.addEventListener("htmx:beforeRequest", function (ev) {
    if (ev.detail.elt && ev.detail.elt.id === "compose") dirty = false;  // Send supersedes autosave
  });
  setInterval(save, AUTOSAVE_MS);
})();
