// tierline agent console: the language selector submits itself; the queue page polls for new
// tickets and can announce them (tab title always, a short beep when the agent opts in).
"use strict";

document.querySelectorAll("[data-autosubmit]").forEach((el) => {
  el.addEventListener("change", () => el.form.submit());
});

(function queuePolling() {
  const table = document.getElementById("queue");
  if (!table) return;
  const body = document.getElementById("queue-rows");
  const sound = document.getElementById("notify-sound");
  const baseTitle = document.title;
  const idsOf = () => new Set(Array.from(body.querySelectorAll("tr[data-ticket]"), (r) => r.dataset.ticket));
  let known = idsOf();
  let unseen = 0;

  sound.checked = localStorage.getItem("tierline.sound") === "1";
  sound.addEventListener("change", () => localStorage.setItem("tierline.sound", sound.checked ? "1" : "0"));
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) { unseen = 0; document.title = baseTitle; }
  });

  function beep() {
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator();
      osc.frequency.value = 880;
      osc.connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.15);
    } catch (e) { /* no audio: the title still tells */ }
  }

  async function poll() {
    try {
      const response = await fetch(table.dataset.poll, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) { window.location = "/console/login"; return; }
      if (!response.ok) return;
      const data = await response.json();
      // rows_html is rendered (and escaped) by the server from the same template as the page.
      body.innerHTML = data.rows_html;
      const fresh = data.ids.map(String).filter((id) => !known.has(id));
      fresh.forEach((id) => {
        const row = body.querySelector(`tr[data-ticket="${id}"]`);
        if (row) row.classList.add("new");
      });
      known = new Set(data.ids.map(String));
      if (fresh.length) {
        unseen += fresh.length;
        document.title = `(${unseen} ${table.dataset.newLabel}) ${baseTitle}`;
        if (sound.checked) beep();
      }
    } catch (e) { /* offline for a moment: try again at the next tick */ }
  }
  window.setInterval(poll, 3000);
})();
