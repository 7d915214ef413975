/* powercrud: the modal and the table refresh of the list page (needs htmx, no build step).
 *
 * - Responses to htmx requests that the page shows in place although they are not 2xx:
 *   422 (a form with its errors) and 409 (a conflict notice, with the user's input).
 * - A fragment loaded into #pc-modal-content opens the modal; the server's
 *   "powercrud:close-modal" event (HX-Trigger) or any [data-pc-close] button closes it.
 * - "powercrud:changed" shows its message in #pc-flash; the results partial listens to
 *   the same event (and the bulk mixin's "powercrud:refresh") and reloads itself.
 * - Other error responses are not swapped in; #pc-flash says what the server answered.
 */
(function () {
  "use strict";

  var SHOWN_IN_PLACE = [409, 422];

  function modal() {
    return document.getElementById("pc-modal");
  }

  function closeModal() {
    var dialog = modal();
    if (dialog && dialog.open) {
      dialog.close();
    }
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    if (SHOWN_IN_PLACE.indexOf(event.detail.xhr.status) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = modal();
    if (dialog && event.detail.target && event.detail.target.id === "pc-modal-content") {
      if (!dialog.open) {
        dialog.showModal();
      }
      var first = dialog.querySelector("[autofocus], input:not([type=hidden]), select, textarea");
      if (first && !dialog.contains(document.activeElement)) {
        first.focus();
      }
    }
  });

  document.addEventListener("powercrud:close-modal", closeModal);

  function flash(message, isError) {
    var element = document.getElementById("pc-flash");
    if (element && message) {
      element.textContent = message;
      element.classList.toggle("pc-flash-error", Boolean(isError));
      element.hidden = false;
    }
  }

  document.addEventListener("powercrud:changed", function (event) {
    flash(event.detail && event.detail.message, false);
  });

  // Other errors (403, 404, 500) are not swapped in: say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    flash("The server answered " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") +
      ": nothing was changed.", true);
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-pc-close]")) {
      event.preventDefault();
      closeModal();
    }
  });

  // Emptied once closed (Escape, a close button, or the server's event), so that a
  // conflict notice inside stops polling.
  document.addEventListener(
    "close",
    function (event) {
      if (event.target && event.target.id === "pc-modal") {
        var content = document.getElementById("pc-modal-content");
        if (content) {
          content.replaceChildren();
        }
      }
    },
    true
  );
})();
