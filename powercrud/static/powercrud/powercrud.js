/* powercrud: the modal and the table refresh of the list page (needs htmx, no build step).
 *
 * - Responses to htmx requests that the page shows in place although they are not 2xx:
 *   422 (a form with its errors) and 409 (a conflict notice, with the user's input).
 * - A fragment loaded into #pc-modal-content opens the modal; the server's
 *   "powercrud:close-modal" event (HX-Trigger) or any [data-pc-close] button closes it.
 * - "powercrud:changed" shows its message in #pc-flash; the results partial listens to
 *   the same event (and the bulk mixin's "powercrud:refresh") and reloads itself.
 * - Other error responses are not swapped in; #pc-flash says what the server answered
 *   (for a busy database, async_queue's "async-queue:busy" message, and the table reloads).
 * - In the bulk edit form, giving a field a value ticks that field's "change" box.
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

  // The database was too busy to write (async_queue's DatabaseBusyMiddleware, HTTP 503):
  // show its message where the user looks. In the modal, above the form, whose input
  // stays for another try; on the list, in #pc-flash, and the table reloads so that its
  // checkboxes show the selection the server kept (a refused click already ticked one).
  var BUSY_EVENT = "async-queue:busy";

  function showInModal(message) {
    var content = document.getElementById("pc-modal-content");
    var note = content.querySelector(".pc-busy");
    if (!note) {
      note = document.createElement("p");
      note.className = "pc-notice pc-error pc-busy";
      note.setAttribute("role", "alert");
      content.prepend(note);
    }
    note.textContent = message;
  }

  document.addEventListener(BUSY_EVENT, function (event) {
    var message = event.detail && event.detail.message;
    var dialog = modal();
    if (message && dialog && dialog.open && dialog.contains(event.target)) {
      showInModal(message);
      return;
    }
    flash(message, true);
    document.body.dispatchEvent(new CustomEvent("powercrud:refresh", { bubbles: true }));
  });

  function isBusy(xhr) {
    var trigger = xhr.getResponseHeader("HX-Trigger");
    return xhr.status === 503 && Boolean(trigger) && trigger.indexOf(BUSY_EVENT) !== -1;
  }

  // Other errors (403, 404, 500) are not swapped in: say so instead of doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (isBusy(xhr)) {
      return; // already said, in the server's words
    }
    flash("The server answered " + xhr.status + (xhr.statusText ? " " + xhr.statusText : "") +
      ": nothing was changed.", true);
  });

  // Bulk edit: typing a value (or choosing one) is a wish to change that field, so its
  // "change" box is ticked for the user. Only ever ticked: unticking stays the user's
  // way to keep the old values, and without JavaScript the box is ticked by hand.
  function tickChangeBox(event) {
    var input = event.target;
    if (!input.closest || /__change$/.test(input.name || "")) {
      return;
    }
    var row = input.closest(".pc-bulk-form tr[data-field]");
    var box = row && row.querySelector('input[type="checkbox"][name$="__change"]');
    if (box && !box.checked) {
      box.checked = true;
    }
  }

  document.addEventListener("input", tickChangeBox);
  document.addEventListener("change", tickChangeBox);

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
