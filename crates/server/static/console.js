// keybridge console: the passkey ceremonies, confirmations and live refresh.
// No inline script is allowed by the Content-Security-Policy: pages opt in to behaviour
// with data- attributes, and this file wires them up.
"use strict";

(function () {
  function b64urlToBytes(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function bytesToB64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // POSTs JSON with the session's CSRF header; resolves to {ok, status, body}.
  async function postJSON(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", "x-csrf-token": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    return { ok: response.ok, status: response.status, body: data };
  }

  function errorMessage(result) {
    if (result.body && result.body.error && result.body.error.message) {
      return result.body.error.message;
    }
    return "The server refused the request (HTTP " + result.status + ").";
  }

  function showError(message) {
    const box = document.getElementById("ceremony-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = document.getElementById("ceremony-error");
    if (box) {
      box.hidden = true;
      box.textContent = "";
    }
  }

  function credentialToJSON(credential) {
    const response = credential.response;
    const json = {
      id: credential.id,
      rawId: bytesToB64url(credential.rawId),
      type: credential.type,
      response: { clientDataJSON: bytesToB64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = bytesToB64url(response.attestationObject);
    }
    if (response.authenticatorData) {
      json.response.authenticatorData = bytesToB64url(response.authenticatorData);
      json.response.signature = bytesToB64url(response.signature);
      if (response.userHandle) json.response.userHandle = bytesToB64url(response.userHandle);
    }
    return json;
  }

  function describe(error) {
    if (error && error.name === "NotAllowedError") {
      return "The passkey prompt was cancelled or timed out. Try again.";
    }
    return "Your browser could not use a passkey: " + (error && error.message ? error.message : error);
  }

  async function login(form) {
    clearError();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const username = (form.querySelector('[name="username"]') || {}).value || "";
      const begin = await postJSON("/console/login/begin", { username: username });
      if (!begin.ok) return showError(errorMessage(begin));
      const options = begin.body.publicKey;
      const publicKey = {
        challenge: b64urlToBytes(options.challenge),
        rpId: options.rpId,
        timeout: options.timeout,
        userVerification: options.userVerification,
        allowCredentials: (options.allowCredentials || []).map(function (c) {
          return { type: c.type, id: b64urlToBytes(c.id) };
        }),
      };
      let credential;
      try {
        credential = await navigator.credentials.get({ publicKey: publicKey });
      } catch (error) {
        return showError(describe(error));
      }
      const finish = await postJSON("/console/login/finish", {
        ceremony: begin.body.ceremony,
        credential: credentialToJSON(credential),
        next: form.dataset.next || "/console",
      });
      if (!finish.ok) return showError(errorMessage(finish));
      window.location.assign(finish.body.redirect);
    } catch (error) {
      showError("Sign-in failed: " + error);
    } finally {
      button.disabled = false;
    }
  }

  async function enrol(form) {
    clearError();
    const button = form.querySelector("button");
    button.disabled = true;
    const base = "/console/enrol/" + encodeURIComponent(form.dataset.token);
    try {
      const begin = await postJSON(base + "/begin", {});
      if (!begin.ok) return showError(errorMessage(begin));
      const options = begin.body.publicKey;
      const publicKey = Object.assign({}, options, {
        challenge: b64urlToBytes(options.challenge),
        user: Object.assign({}, options.user, { id: b64urlToBytes(options.user.id) }),
        excludeCredentials: (options.excludeCredentials || []).map(function (c) {
          return { type: c.type, id: b64urlToBytes(c.id) };
        }),
      });
      let credential;
      try {
        credential = await navigator.credentials.create({ publicKey: publicKey });
      } catch (error) {
        return showError(describe(error));
      }
      const finish = await postJSON(base + "/finish", {
        ceremony: begin.body.ceremony,
        credential: credentialToJSON(credential),
      });
      if (!finish.ok) return showError(errorMessage(finish));
      window.location.assign(finish.body.redirect);
    } catch (error) {
      showError("Registration failed: " + error);
    } finally {
      button.disabled = false;
    }
  }

  // <form data-confirm="Delete this user?"> asks in a dialog before it is sent; the dialog's
  // buttons are #confirm-dialog-ok and #confirm-dialog-cancel. data-confirm-label names the
  // OK button; data-confirm-style="primary" makes it a plain (not red) button.
  function confirmThen(form) {
    let dialog = document.getElementById("confirm-dialog");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "confirm-dialog";
      dialog.className = "confirm-dialog";
      dialog.setAttribute("aria-labelledby", "confirm-dialog-text");
      const text = document.createElement("p");
      text.id = "confirm-dialog-text";
      const actions = document.createElement("div");
      actions.className = "actions";
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.id = "confirm-dialog-cancel";
      cancel.className = "button secondary";
      cancel.textContent = "Cancel";
      const ok = document.createElement("button");
      ok.type = "button";
      ok.id = "confirm-dialog-ok";
      ok.className = "button danger";
      ok.textContent = "Confirm";
      actions.append(cancel, ok);
      dialog.append(text, actions);
      document.body.append(dialog);
      cancel.addEventListener("click", function () { dialog.close(); });
    }
    dialog.querySelector("#confirm-dialog-text").textContent = form.dataset.confirm;
    const ok = dialog.querySelector("#confirm-dialog-ok");
    ok.textContent = form.dataset.confirmLabel || "Confirm";
    ok.className = form.dataset.confirmStyle === "primary" ? "button" : "button danger";
    ok.onclick = function () {
      dialog.close();
      form.dataset.confirmed = "yes";
      form.requestSubmit();
    };
    dialog.showModal();
    ok.focus();
  }

  // <div data-refresh-url="/console/x/fragment" data-refresh-seconds="2"> replaces its
  // content with the fragment the server renders, every few seconds.
  function refreshLoop(element) {
    const seconds = Math.max(1, parseInt(element.dataset.refreshSeconds || "3", 10));
    async function tick() {
      try {
        const response = await fetch(element.dataset.refreshUrl, { credentials: "same-origin" });
        if (response.ok) {
          const html = await response.text();
          if (html !== element.innerHTML) element.innerHTML = html;
        }
      } catch (_) {
        // A missed refresh is tried again at the next tick.
      }
      window.setTimeout(tick, seconds * 1000);
    }
    window.setTimeout(tick, seconds * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-passkey-login]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        login(form);
      });
    });
    document.querySelectorAll("form[data-passkey-enrol]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        enrol(form);
      });
    });
    // Delegated, so that forms in fragments loaded later (a user's passkeys) ask too.
    document.addEventListener("submit", function (event) {
      const form = event.target;
      if (!(form instanceof HTMLFormElement) || !form.matches("form[data-confirm]")) return;
      if (form.dataset.confirmed === "yes") return;
      event.preventDefault();
      confirmThen(form);
    });
    document.querySelectorAll("[data-refresh-url]").forEach(refreshLoop);
    // <input type="file" data-pem-target="ID"> (or data-text-target) reads a text file into
    // the textarea ID, so that the form is sent as ordinary fields. With data-max-bytes, a
    // larger file is refused in the element data-size-error names, before anything is sent.
    document.querySelectorAll("input[type=file][data-pem-target], input[type=file][data-text-target]").forEach(function (input) {
      input.addEventListener("change", function () {
        const target = document.getElementById(input.dataset.pemTarget || input.dataset.textTarget);
        const file = input.files && input.files[0];
        if (!target || !file) return;
        const max = parseInt(input.dataset.maxBytes || "0", 10);
        const sizeError = document.getElementById(input.dataset.sizeError || "");
        if (sizeError) sizeError.hidden = true;
        if (max > 0 && file.size > max) {
          input.value = "";
          if (sizeError) {
            sizeError.textContent = file.name + " is " + Math.ceil(file.size / 1024) + " KiB; at most " +
              Math.floor(max / 1024) + " KiB can be sent at once: split it into smaller files.";
            sizeError.hidden = false;
          }
          return;
        }
        file.text().then(function (text) { target.value = text; });
      });
    });
    // <button data-copy-target="ID">: copies the value of the input ID (an invitation link).
    document.querySelectorAll("button[data-copy-target]").forEach(function (button) {
      button.addEventListener("click", function () {
        const source = document.getElementById(button.dataset.copyTarget);
        if (!source) return;
        const done = function () { button.textContent = "Copied"; };
        source.select();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(source.value).then(done, function () {
            if (document.execCommand("copy")) done();
          });
        } else if (document.execCommand("copy")) {
          done();
        }
      });
    });
  });

  window.keybridgeConsole = { postJSON: postJSON, b64urlToBytes: b64urlToBytes, bytesToB64url: bytesToB64url };
})();

// User Management: a row's Entra passkeys on demand, and the live refresh of the listed
// users' state and the tab counts (no reload).
(function () {
  "use strict";
  const LIVE_EVERY_MS = 2000;

  function expandRows() {
    document.querySelectorAll("button[data-expand]").forEach(function (button) {
      button.addEventListener("click", function () {
        const row = document.getElementById(button.dataset.expand);
        if (!row) return;
        const open = button.getAttribute("aria-expanded") === "true";
        button.setAttribute("aria-expanded", open ? "false" : "true");
        row.hidden = open;
        if (open || row.dataset.loaded === "true") return;
        const box = row.querySelector(".methods");
        fetch(button.dataset.methodsUrl, { credentials: "same-origin", cache: "no-store" })
          .then(function (response) {
            if (!response.ok) throw new Error("HTTP " + response.status);
            return response.text();
          })
          .then(function (html) {
            const fresh = new DOMParser().parseFromString(html, "text/html").body;
            box.replaceChildren.apply(box, Array.from(fresh.childNodes).map(function (n) {
              return document.importNode(n, true);
            }));
            row.dataset.loaded = "true";
          })
          .catch(function (error) {
            box.textContent = "The passkeys could not be loaded (" + error.message + "). Try again.";
          });
      });
    });
  }

  function liveRefresh() {
    const table = document.querySelector("table[data-live-url]");
    if (!table) return;
    const ids = Array.from(table.querySelectorAll("tr[data-user-id]")).map(function (tr) {
      return tr.dataset.userId;
    });
    const url = table.dataset.liveUrl + "&ids=" + encodeURIComponent(ids.join(","));
    function set(row, field, text) {
      const cell = row.querySelector('[data-field="' + field + '"]');
      if (cell && cell.textContent !== text) cell.textContent = text;
      return cell;
    }
    function tick() {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (!body) return;
          Object.keys(body.counts).forEach(function (state) {
            const count = document.querySelector('[data-count="' + state + '"]');
            if (count) count.textContent = String(body.counts[state]);
          });
          body.users.forEach(function (user) {
            const row = document.getElementById("user-" + user.id);
            if (!row) return;
            const state = set(row, "state", user.state_label);
            if (state) state.className = "state state-" + user.state;
            row.dataset.state = user.state;
            set(row, "device_count", String(user.device_count));
            set(row, "last_active", user.last_active);
            const warning = set(row, "warning", user.warning || "");
            if (warning) warning.hidden = !user.warning;
          });
        })
        .catch(function () {})
        .then(function () {
          window.setTimeout(tick, LIVE_EVERY_MS);
        });
    }
    window.setTimeout(tick, LIVE_EVERY_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    expandRows();
    liveRefresh();
  });
})();
