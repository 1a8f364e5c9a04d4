// chainpay checkout: live status by polling /pay/{id}/status, copy buttons, countdown.
// The page is complete without this script; it only keeps it current.
(function () {
  "use strict";

  var root = document.getElementById("checkout");
  if (!root) return;

  var statusUrl = root.getAttribute("data-status-url");
  var qrUrl = root.getAttribute("data-qr-url");
  var pollMs = Number(root.getAttribute("data-poll-seconds") || "2") * 1000;
  var redirectMs = Number(root.getAttribute("data-redirect-seconds") || "5") * 1000;
  var OPEN = { waiting: true, partial: true }; // money still due: show how to pay
  var EXPIRED = { expired: true, underpaid: true }; // "confirming" polls at the normal pace
  var FINAL = { paid: true, paid_late: true };
  var state = root.getAttribute("data-state");
  var dueEl = document.getElementById("amount-value");
  var lastDue = dueEl ? dueEl.textContent.trim() : null;
  var redirecting = false;

  // -- copy buttons --------------------------------------------------------------------------
  var copied = document.getElementById("copied");

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  Array.prototype.forEach.call(document.querySelectorAll("button[data-copy]"), function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", function () {
      copyText(source.textContent.trim()).then(function () {
        button.textContent = "Copied";
        copied.textContent = label.replace(/^Copy /, "") + " copied to the clipboard.";
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () {
        copied.textContent = "Could not copy: select the text and copy it by hand.";
      });
    });
  });

  // -- countdown -----------------------------------------------------------------------------
  var countdown = document.getElementById("countdown");
  var deadline = null;

  function setDeadline(seconds) {
    deadline = Date.now() + Number(seconds) * 1000; // from the server's clock, not the device's
  }

  function showCountdown() {
    if (!countdown || deadline === null) return;
    var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    var text = (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + (s < 10 ? "0" : "") + s;
    countdown.textContent = text;
  }

  if (countdown) {
    setDeadline(countdown.getAttribute("data-expires-in"));
    setInterval(showCountdown, 1000);
  }

  // -- live status ---------------------------------------------------------------------------
  function setField(name, value) {
    Array.prototype.forEach.call(root.querySelectorAll('[data-field="' + name + '"]'), function (el) {
      if (el.textContent !== String(value)) el.textContent = value;
    });
  }

  function render(s) {
    state = s.state;
    root.setAttribute("data-state", state);
    Array.prototype.forEach.call(root.querySelectorAll("[data-panel]"), function (panel) {
      panel.hidden = panel.getAttribute("data-panel") !== state;
    });
    setField("amount_due", s.amount_due);
    setField("amount_received", s.amount_received);
    setField("amount_confirmed", s.amount_confirmed);
    setField("amount_pending", s.amount_pending);
    setField("confirmations", s.confirmations.current);
    Array.prototype.forEach.call(root.querySelectorAll('[data-field="progress"]'), function (bar) {
      bar.max = s.confirmations.required;
      bar.value = s.confirmations.current;
    });
    document.getElementById("pay").hidden = !OPEN[state];
    Array.prototype.forEach.call(root.querySelectorAll("[data-when]"), function (el) {
      el.hidden = (el.getAttribute("data-when") === "open") !== Boolean(OPEN[state]);
    });
    setDeadline(s.expires_in);
    showCountdown();

    if (lastDue !== null && lastDue !== s.amount_due && OPEN[state]) {
      // Something arrived: ask only for what is still missing.
      var img = document.createElement("img");
      img.src = qrUrl + "?due=" + encodeURIComponent(s.amount_due);
      img.alt = "QR code with the payment details for your wallet";
      var figure = document.getElementById("qr");
      var old = figure.querySelector("svg, img");
      if (old) figure.replaceChild(img, old);
      document.getElementById("wallet-link").href = s.payment_uri;
    }
    lastDue = s.amount_due;

    var tolerance = root.querySelector('[data-show="tolerance"]');
    if (tolerance) tolerance.hidden = s.exception !== "underpaid_within_tolerance";

    if (FINAL[state] && s.redirect_url) {
      Array.prototype.forEach.call(root.querySelectorAll('[data-field="redirect_link"]'), function (a) {
        a.href = s.redirect_url;
      });
      Array.prototype.forEach.call(root.querySelectorAll('[data-show="redirect"]'), function (el) {
        el.hidden = false;
      });
      if (state === "paid" && !redirecting) {
        redirecting = true;
        var note = root.querySelector('[data-show="redirect-note"]');
        if (note) note.hidden = false;
        setTimeout(function () { window.location.assign(s.redirect_url); }, redirectMs);
      }
    }
  }

  function poll(delay) {
    setTimeout(function () {
      fetch(statusUrl, { cache: "no-store", credentials: "omit", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (s) {
          render(s);
          if (FINAL[s.state]) return; // paid is final
          // An expired invoice can still be paid late within the monitoring window.
          poll(EXPIRED[s.state] ? pollMs * 5 : pollMs);
        })
        .catch(function () { poll(Math.min(delay * 2 || pollMs, 30000)); });
    }, delay);
  }

  poll(FINAL[state] ? 0 : pollMs); // a paid page polls once, to take the customer back
})();
