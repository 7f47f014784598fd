// tierline agent console: the ticket page's canned replies. A click inserts the reply (filled
// in by the server) into the reply box at the cursor, and names any placeholder left to fill.
"use strict";

(function cannedReplies() {
  const box = document.getElementById("reply-text");
  const missing = document.getElementById("canned-missing");
  if (!box) return;
  document.querySelectorAll("button[data-canned]").forEach((button) => {
    button.addEventListener("click", () => {
      const text = button.dataset.canned;
      const start = box.selectionStart ?? box.value.length;
      const end = box.selectionEnd ?? start;
      box.value = box.value.slice(0, start) + text + box.value.slice(end);
      box.focus();
      box.setSelectionRange(start + text.length, start + text.length);
      const names = (button.dataset.missing || "").split(" ").filter(Boolean);
      if (missing) {
        missing.hidden = names.length === 0;
        missing.textContent = names.length
          ? `${missing.dataset.label} ${names.map((n) => `{${n}}`).join(", ")}` : "";
      }
    });
  });
})();
