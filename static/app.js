// coincast dashboards: the pages work without this; it adds the pipeline trigger (which needs
// the bearer token) and an optional auto-refresh (?refresh=SECONDS).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("trigger");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const out = document.getElementById("trigger-result");
      const token = form.elements.token.value;
      const job = form.elements.job.value;
      try {
        const r = await fetch("/api/pipeline/runs", {
          method: "POST",
          headers: { "content-type": "application/json", "authorization": "Bearer " + token },
          body: JSON.stringify({ job }),
        });
        const body = await r.json();
        out.textContent = r.ok ? "queued: " + body.job : (body.error ? body.error.message : "HTTP " + r.status);
      } catch (e) {
        out.textContent = "request failed: " + e;
      }
    });
  }
  const refresh = Number(new URLSearchParams(location.search).get("refresh"));
  if (refresh >= 5) setTimeout(() => location.reload(), refresh * 1000);
});
