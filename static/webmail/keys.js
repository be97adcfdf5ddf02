// Gmail-style keyboard shortcuts (Settings → Keyboard shortcuts turns them off). Press ? for the list.
(function () {
  "use strict";
  let cursorKey = null;  // data-key of the list row under the cursor, kept across live refreshes

  function typing(ev) {
    const t = ev.target;
    if (!t || !t.closest) return false;
    return !!t.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']");
  }

  function rows() { return Array.from(document.querySelectorAll("#list tbody tr")); }
  function cursorRow() { return document.querySelector("#list tbody tr.cursor"); }

  function setCursor(row) {
    rows().forEach(function (r) { r.classList.remove("cursor"); });
    if (!row) return;
    row.classList.add("cursor");
    cursorKey = row.dataset.key;
    const link = row.querySelector(".subject a");
    if (link) link.focus();
  }

  function moveCursor(step) {
    const all = rows();
    if (!all.length) return false;
    const at = all.indexOf(cursorRow());
    const next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    setCursor(all[next]);
    return true;
  }

  function sections() { return Array.from(document.querySelectorAll(".conversation section.msg")); }

  function moveInConversation(step) {
    const all = sections();
    if (!all.length) return false;
    let at = all.indexOf(document.activeElement && document.activeElement.closest
      ? document.activeElement.closest("section.msg") : null);
    if (at < 0) at = all.length - 1;  // the newest message is the one shown open
    const next = all[Math.min(all.length - 1, Math.max(0, at + step))];
    if (!next.hasAttribute("tabindex")) next.setAttribute("tabindex", "-1");
    next.focus();
    return true;
  }

  // Actions on the selection, else on the row under the cursor (list), else on the open message.
  function act(action) {
    const listForm = document.getElementById("list-form");
    if (listForm) {
      const button = listForm.querySelector('button[name="action"][value="' + action + '"]');
      if (!button) return false;
      const checked = listForm.querySelectorAll("#list input[name=ids]:checked");
      if (!checked.length) {
        const row = cursorRow();
        const box = row && row.querySelector("input[name=ids]");
        if (!box) return false;
        box.checked = true;
      }
      button.click();
      return true;
    }
    const button = document.querySelector('.conversation .toolbar button[name="action"][value="' + action + '"]');
    if (button) { button.click(); return true; }
    return false;
  }

  function follow(selector) {
    const link = document.querySelector(selector);
    if (!link) return false;
    link.click();
    return true;
  }

  function lastReply(kind) {
    const all = document.querySelectorAll(".reply-actions a[data-reply='" + kind + "']");
    if (!all.length) return false;
    all[all.length - 1].click();
    return true;
  }

  function star() {
    const row = cursorRow();
    if (row) { const b = row.querySelector(".star-toggle"); if (b) { b.click(); return true; } return false; }
    return act("star") || act("unstar");
  }

  function help() {
    const dialog = document.getElementById("shortcuts-help");
    if (!dialog) return false;
    if (dialog.open) dialog.close(); else dialog.showModal();
    return true;
  }

  const KEYS = {
    "c": function () { return follow("a.compose"); },
    // j/k: the next (older) or previous (newer) row of the list, or conversation when reading.
    "j": function () { return moveCursor(1) || follow(".conversation a.older"); },
    "k": function () { return moveCursor(-1) || follow(".conversation a.newer"); },
    // n/p: the next or previous message within the conversation being read.
    "n": function () { return moveInConversation(1); },
    "p": function () { return moveInConversation(-1); },
    "o": function () { const r = cursorRow(); return !!r && follow("#list tbody tr.cursor .subject a"); },
    "Enter": function () { const r = cursorRow(); return !!r && follow("#list tbody tr.cursor .subject a"); },
    "u": function () { return follow(".conversation a.back"); },
    "e": function () { return act("archive"); },
    "#": function () { return act("delete"); },
    "r": function () { return lastReply("reply"); },
    "a": function () { return lastReply("all"); },
    "f": function () { return lastReply("forward"); },
    "s": star,
    "x": function () {
      const row = cursorRow();
      const box = row && row.querySelector("input[name=ids]");
      if (!box) return false;
      box.checked = !box.checked;
      return true;
    },
    "I": function () { return act("read"); },
    "U": function () { return act("unread"); },
    "/": function () {
      const search = document.querySelector("input[type=search]");
      if (!search) return false;
      search.focus();
      return true;
    },
    "?": help,
  };

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing || typing(ev)) return;
    const dialog = document.getElementById("shortcuts-help");
    if (dialog && dialog.open && ev.key !== "?") return;  // the dialog handles Escape itself
    // Enter on a link or a button does what it always does.
    if (ev.key === "Enter" && ev.target.closest && ev.target.closest("a, button")) return;
    const handler = Object.prototype.hasOwnProperty.call(KEYS, ev.key) ? KEYS[ev.key] : null;
    if (handler && handler()) ev.preventDefault();
  });

  // The cursor survives live refreshes and actions that redraw the list; when its row left
  // (archived, deleted), it moves to the row that took its place, as in Gmail.
  let cursorIndex = -1;
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "list") cursorIndex = rows().indexOf(cursorRow());
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    if (!ev.detail.target || ev.detail.target.id !== "list" || cursorIndex < 0) return;
    const lost = !document.activeElement || document.activeElement === document.body;
    let row = cursorKey ? document.querySelector('#list tbody tr[data-key="' + cursorKey + '"]') : null;
    const all = rows();
    if (!row && all.length) row = all[Math.min(cursorIndex, all.length - 1)];
    if (!row) return;
    if (lost) setCursor(row); else { row.classList.add("cursor"); cursorKey = row.dataset.key; }
  });
  document.addEventListener("focusin", function (ev) {
    const row = ev.target.closest && ev.target.closest("#list tbody tr");
    if (row && !row.classList.contains("cursor")) {
      rows().forEach(function (r) { r.classList.remove("cursor"); });
      row.classList.add("cursor");
      cursorKey = row.dataset.key;
    }
  });
})();
