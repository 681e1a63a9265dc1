// The Device Manager page: renews the pairing code before it expires, counts down, and
// follows the enrolment's status. No framework, no inline code (the page's CSP forbids it).
(function () {
  "use strict";

  var STATUS_EVERY_MS = 2000;
  var RENEW_BEFORE_S = 5;

  var root = document.getElementById("device-manager");
  if (!root) {
    return;
  }
  var codeUrl = root.getAttribute("data-code-url");
  var statusUrl = root.getAttribute("data-status-url");
  var statusBox = document.getElementById("status");
  var statusText = document.getElementById("status-text");
  var renewing = false;
  var stopped = false;
  var lastStatus = "";

  function secondsLeft() {
    var section = document.getElementById("pairing-code");
    if (!section) {
      return null;
    }
    var expires = Date.parse(section.getAttribute("data-expires-at"));
    if (isNaN(expires)) {
      return null;
    }
    return Math.max(0, Math.round((expires - Date.now()) / 1000));
  }

  function renew() {
    if (renewing || stopped || !codeUrl) {
      return;
    }
    renewing = true;
    fetch(codeUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          // The link was used (the phone paired) or withdrawn: the status says which.
          stopCode();
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null || stopped) {
          return;
        }
        var fresh = new DOMParser()
          .parseFromString(html, "text/html")
          .getElementById("pairing-code");
        var current = document.getElementById("pairing-code");
        if (fresh && current) {
          var wasOpen = current.querySelector("details[open]") !== null;
          current.replaceWith(document.importNode(fresh, true));
          if (wasOpen) {
            var details = document.querySelector("#pairing-code details");
            if (details) {
              details.open = true;
            }
          }
        }
      })
      .catch(function () {
        // Offline for a moment: the next tick tries again.
      })
      .then(function () {
        renewing = false;
      });
  }

  function stopCode() {
    stopped = true;
    var section = document.getElementById("pairing-code");
    if (section) {
      section.hidden = true;
    }
  }

  function tick() {
    var left = secondsLeft();
    if (left === null) {
      return;
    }
    var counter = document.getElementById("countdown-seconds");
    if (counter) {
      counter.textContent = String(left);
    }
    if (left <= RENEW_BEFORE_S) {
      renew();
    }
  }

  function showStatus(body) {
    if (!statusBox || !statusText) {
      return;
    }
    if (body.status !== lastStatus) {
      lastStatus = body.status;
      statusBox.setAttribute("data-status", body.status);
      statusBox.className = "status status-" + body.status;
      statusText.textContent = body.message;
    }
    if (body.status !== "waiting") {
      stopCode();
    }
  }

  function poll() {
    if (!statusUrl) {
      return;
    }
    fetch(statusUrl, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (body) {
          showStatus(body);
        }
        if (!body || !body.final_state) {
          window.setTimeout(poll, STATUS_EVERY_MS);
        }
      })
      .catch(function () {
        window.setTimeout(poll, STATUS_EVERY_MS);
      });
  }

  window.setInterval(tick, 1000);
  tick();
  poll();
})();
