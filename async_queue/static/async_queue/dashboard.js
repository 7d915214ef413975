/* The job dashboard's one script: show "busy, try again" answers (needs htmx).
 *
 * When the database is too busy to write (a job holds SQLite's write lock),
 * DatabaseBusyMiddleware answers an htmx action with HTTP 503, which htmx does
 * not swap in, and an "async-queue:busy" event carrying the message: show it
 * where the dashboard shows its messages.
 */
(function () {
  "use strict";

  document.addEventListener("async-queue:busy", function (event) {
    var box = document.getElementById("aq-messages");
    var message = event.detail && event.detail.message;
    if (!box || !message) {
      return;
    }
    var list = document.createElement("ul");
    list.className = "aq-messages";
    var item = document.createElement("li");
    item.className = "aq-message aq-error";
    item.setAttribute("role", "alert");
    item.textContent = message;
    list.appendChild(item);
    box.replaceChildren(list);
  });
})();
