// tierline agent console: the language selector submits itself; times are shown in the
// agent's time zone; the queue and ticket pages listen to /console/events (Server-Sent
// Events) and change in place: new tickets, claims and transfers in the queue (the tab title
// counts new ones, and a short beep sounds when the agent opts in), new messages and status
// changes on a ticket.
"use strict";

document.querySelectorAll("[data-autosubmit]").forEach((el) => {
  el.addEventListener("change", () => el.form.submit());
});

// --- times: the server writes UTC ISO timestamps; the browser knows the agent's zone ----------
const pageLang = document.documentElement.lang || "en";
const locale = (navigator.languages || []).find((l) => l.split("-")[0] === pageLang) || pageLang;
const timeFormat = new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short" });

function localTimes(root) {
  root.querySelectorAll("time[data-local], time[data-local-title]").forEach((el) => {
    const when = new Date(el.dateTime);
    if (isNaN(when)) return;
    if (el.hasAttribute("data-local")) el.textContent = timeFormat.format(when);
    else el.title = timeFormat.format(when);
  });
}
localTimes(document);

// --- live updates ---------------------------------------------------------------------------
// One EventSource per page. The server ends each stream after a few seconds and the browser
// reconnects by itself; a refused one (401: signed out; 404: not this agent's ticket) is
// closed for good, so ask the queue why: signed out goes to the sign-in page.
function listen(url, handlers) {
  const indicator = document.getElementById("live");
  let source = null;
  let offlineTimer = null;
  const show = (online) => {
    if (!indicator) return;
    indicator.hidden = false;
    indicator.textContent = online ? indicator.dataset.live : indicator.dataset.reconnecting;
    indicator.classList.toggle("off", !online);
  };
  function connect() {
    source = new EventSource(url);
    source.onopen = () => { clearTimeout(offlineTimer); offlineTimer = null; show(true); };
    source.onerror = () => {
      // A stream that ended normally reopens within a second: only say so if it does not.
      if (offlineTimer === null) offlineTimer = setTimeout(() => show(false), 2500);
      if (source.readyState !== EventSource.CLOSED) return;
      fetch("/console/queue.json", { credentials: "same-origin", cache: "no-store" })
        .then((r) => { if (r.status === 401) window.location = "/console/login"; else setTimeout(connect, 3000); })
        .catch(() => setTimeout(connect, 3000));
    };
    source.addEventListener("signout", () => { source.close(); window.location = "/console/login"; });
    Object.entries(handlers).forEach(([name, handle]) => {
      source.addEventListener(name, (event) => handle(JSON.parse(event.data), source));
    });
  }
  connect();
}

(function liveQueue() {
  const table = document.getElementById("queue");
  if (!table) return;
  const body = document.getElementById("queue-rows");
  const sound = document.getElementById("notify-sound");
  const baseTitle = document.title;
  const known = new Set(Array.from(body.querySelectorAll("tr[data-ticket]"), (r) => r.dataset.ticket));
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

  listen(table.dataset.events, {
    queue(data) {
      // rows_html is rendered (and escaped) by the server from the same template as the page.
      body.innerHTML = data.rows_html;
      localTimes(body);
      const fresh = data.ids.map(String).filter((id) => !known.has(id));
      fresh.forEach((id) => {
        known.add(id);
        const row = body.querySelector(`tr[data-ticket="${id}"]`);
        if (row) row.classList.add("new");
      });
      if (fresh.length) {
        unseen += fresh.length;
        document.title = `(${unseen}) ${baseTitle}`;
        if (sound.checked) beep();
      }
    },
  });
})();

(function liveTicket() {
  const transcript = document.getElementById("transcript");
  if (!transcript) return;
  const status = document.getElementById("ticket-status");
  const team = document.getElementById("ctx-team");
  const notice = document.getElementById("live-notice");
  const rendered = { ...status.dataset };
  const say = (text) => { notice.querySelector("span").textContent = text; notice.hidden = false; };

  listen(transcript.dataset.events, {
    message(data) {
      if (transcript.querySelector(`[data-message="${data.id}"]`)) return;  // already shown
      const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
      // html is one bubble rendered (and escaped) by the server from the page's template.
      transcript.insertAdjacentHTML("beforeend", data.html);
      const bubble = transcript.lastElementChild;
      localTimes(bubble);
      bubble.classList.add("new");
      if (nearBottom) bubble.scrollIntoView({ block: "end" });
    },
    ticket(data) {
      status.textContent = data.status_label;
      if (team) team.textContent = data.team;
      const assigned = data.assigned_agent_id === null ? "" : String(data.assigned_agent_id);
      if (data.status !== rendered.status || data.team !== rendered.team || assigned !== rendered.assigned) {
        say(notice.dataset.changed);
      }
    },
    gone(data, source) {
      source.close();
      say(notice.dataset.gone);
    },
  });
})();
