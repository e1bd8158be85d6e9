// Hides the chat's "the AI model is starting" note once the engine is no longer loading.
// Kept apart from the chat's modules (main.js): it only polls /health/ready while the note is on the page.
"use strict";

(function watchEngineNote() {
  const note = document.getElementById("engine-note");
  if (!note || note.hidden) return;
  const poll = () => {
    fetch("/health/ready", { headers: { Accept: "application/json" }, cache: "no-store" })
      .then((response) => response.json())
      .then((body) => {
        const state = body && body.engine && body.engine.state;
        if (state && state !== "loading") {
          note.hidden = true;
        } else {
          window.setTimeout(poll, 3000);
        }
      })
      .catch(() => window.setTimeout(poll, 10000));
  };
  window.setTimeout(poll, 2000);
})();
