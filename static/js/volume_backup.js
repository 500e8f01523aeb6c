/* Berth: a volume backup's page. When the job finishes (progress.js fires "berth:job-done"), reload
 * once so the server renders the download (or explains the failure). No inline script (CSP). */
(function () {
  "use strict";
  document.addEventListener("berth:job-done", function () {
    if (!document.querySelector("[data-reload-when-done]")) return;
    if (document.querySelector("[data-backup-download]")) return;
    window.location.reload();
  });
})();
