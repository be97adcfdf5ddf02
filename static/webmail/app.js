// Live updates over the account's websocket, and list selection helpers. No framework.
(function () {
  "use strict";
  const MAX_BACKOFF_MS = 30000;
  let backoff = 500;
  let socket = null;

  function status(text, on) {
    const el = document.getElementById("live-status");
    if (el) { el.textContent = text; el.classList.toggle("on", !!on); }
  }

  function refresh(detail) {
    // Lists and counts listen for this event (hx-trigger="mail-changed from:body").
    document.body.dispatchEvent(new CustomEvent("mail-changed", { bubbles: true, detail: detail || {} }));
  }

  function connect() {
    const el = document.getElementById("live-status");
    if (!el || !window.WebSocket) return;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + el.dataset.url;
    socket = new WebSocket(url);
    socket.addEventListener("open", function () { backoff = 500; status("live", true); });
    socket.addEventListener("message", function (ev) {
      let data = {};
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data.type === "hello") { refresh({ resync: true }); return; }  // catch up on anything missed
      if (data.type === "mail.changed") refresh(data);
    });
    socket.addEventListener("close", function (ev) {
      status("offline", false);
      if (ev.code === 4401) return;  // signed out: nothing to reconnect to
      const wait = backoff + Math.floor(Math.random() * 250);
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      setTimeout(connect, wait);
    });
  }

  // Keep the selection across live refreshes of the list.
  let kept = [];
  document.addEventListener("htmx:beforeSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "list") {
      kept = Array.from(document.querySelectorAll("#list input[name=ids]:checked")).map(function (i) { return i.value; });
    }
  });
  document.addEventListener("htmx:afterSwap", function (ev) {
    if (ev.detail.target && ev.detail.target.id === "list") {
      const isAction = ev.detail.requestConfig && ev.detail.requestConfig.verb === "post";
      if (!isAction) kept.forEach(function (v) {
        const box = document.querySelector('#list input[name=ids][value="' + v + '"]');
        if (box) box.checked = true;
      });
      const all = document.getElementById("select-all");
      if (all) all.checked = false;
    }
  });
  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.id === "select-all") {
      document.querySelectorAll("#list input[name=ids]").forEach(function (box) { box.checked = ev.target.checked; });
    }
  });

  document.addEventListener("DOMContentLoaded", connect);
})();
