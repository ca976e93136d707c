// The onboarding form's one script: OpenID Connect sign-in (authorization code
// + PKCE, public client), the JSON submission with the bearer token and one
// Idempotency-Key per submission, the character count, and every answer shown
// in plain words. No framework, no build step, nothing from another origin.
// Without this script the form still posts (urlencoded) and the function
// answers HTML.
"use strict";

(function () {
  var MAX = 100;
  var main = document.getElementById("main");
  var form = document.getElementById("create");
  var input = document.getElementById("name");
  var submit = document.getElementById("submit");
  var group = document.getElementById("name-group");
  var fieldError = document.getElementById("name-error");
  var fieldErrorText = document.getElementById("name-error-text");
  var summary = document.getElementById("error-summary");
  var summaryList = document.getElementById("error-summary-list");
  var count = document.getElementById("name-count");
  var countStatus = document.getElementById("name-count-status");
  var status = document.getElementById("status");
  var result = document.getElementById("result");
  var accountId = document.getElementById("account-id");
  var signedOut = document.getElementById("signed-out");
  var signedOutText = document.getElementById("signed-out-text");
  var account = document.getElementById("account");
  var signedInAs = document.getElementById("signed-in-as");

  var signin = null;
  try {
    signin = main.dataset.signin ? JSON.parse(main.dataset.signin) : null;
  } catch (e) {
    signin = null;
  }

  var TOKEN = "chime-onboard.token";
  var PKCE = "chime-onboard.pkce";

  // ------------------------------------------------------------ words

  var FIELD_CODES = ["NameMissing", "NameEmpty", "NameNotString", "NameTooLong", "NameInvalidCharacter"];

  function wait(seconds) {
    if (seconds === 1) return "Try again in 1 second.";
    if (seconds > 1) return "Try again in " + seconds + " seconds.";
    return "Try again in a minute.";
  }

  // The same words the function's HTML answers use (src/web.rs, `words`).
  function words(code, retryAfter) {
    switch (code) {
      case "NameMissing": case "NameEmpty": case "NameNotString":
        return "Enter an account name";
      case "NameTooLong":
        return "Account name must be 100 characters or fewer";
      case "NameInvalidCharacter":
        return "Account name must not contain tabs, line breaks or other control characters";
      case "BadRequestException":
        return "Amazon Chime did not accept this account name. Check it and try again.";
      case "ThrottledClientException":
        return "Amazon Chime is busy right now. " + wait(retryAfter);
      case "ServiceUnavailableException": case "AuthUnavailable": case "IdempotencyStoreFailed":
        return "The service is unavailable right now. " + wait(retryAfter);
      case "IdempotencyInProgress":
        return "This request is still being processed. " + wait(retryAfter);
      case "ChimeTimeout": case "ChimeUnreachable":
        return "Amazon Chime did not answer in time, so the account may not have been created. " + wait(retryAfter);
      case "AuthenticationRequired":
        return "Sign in to create an account.";
      case "TokenExpired":
        return "Your sign-in has expired. Sign in again.";
      case "TokenInvalid":
        return "Your sign-in was not accepted. Sign in again.";
      case "NetworkError":
        return "The service could not be reached. Check your connection. " + wait(0);
      default:
        return "Something went wrong (" + code + "). " + wait(retryAfter);
    }
  }

  // ------------------------------------------------------------ character count

  // The server's rule (src/onboard.rs): trim Unicode White_Space, count
  // Unicode scalar values. JavaScript's trim() differs (it trims U+FEFF and
  // keeps U+0085), so the set is spelled out.
  var WS = "[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
  var TRIM = new RegExp("^" + WS + "+|" + WS + "+$", "g");

  function scalarCount(text) {
    return Array.from(text.replace(TRIM, "")).length;
  }

  var announce = null;
  function updateCount() {
    var n = scalarCount(input.value);
    var left = MAX - n;
    var text = left >= 0
      ? "You have " + left + (left === 1 ? " character" : " characters") + " remaining"
      : "You have " + -left + (left === -1 ? " character" : " characters") + " too many";
    count.textContent = text;
    count.classList.toggle("count--over", left < 0);
    // Announce once typing pauses, not on every key.
    clearTimeout(announce);
    announce = setTimeout(function () { countStatus.textContent = text; }, 1000);
  }

  // ------------------------------------------------------------ messages

  function clearErrors() {
    summary.hidden = true;
    summaryList.textContent = "";
    fieldError.hidden = true;
    fieldErrorText.textContent = "";
    group.classList.remove("form-group--error");
    input.removeAttribute("aria-invalid");
    input.setAttribute("aria-describedby", "name-hint name-count");
    if (document.title.indexOf("Error: ") === 0) document.title = document.title.slice(7);
  }

  function showErrors(message, field) {
    summaryList.textContent = "";
    var item = document.createElement("li");
    if (field) {
      var link = document.createElement("a");
      link.href = "#name";
      link.textContent = message;
      link.addEventListener("click", function (event) {
        event.preventDefault();
        input.focus();
      });
      item.appendChild(link);
      fieldErrorText.textContent = message;
      fieldError.hidden = false;
      group.classList.add("form-group--error");
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", "name-hint name-count name-error");
    } else {
      item.textContent = message;
    }
    summaryList.appendChild(item);
    summary.hidden = false;
    if (document.title.indexOf("Error: ") !== 0) document.title = "Error: " + document.title;
    summary.focus();
  }

  // ------------------------------------------------------------ sign-in

  function base64url(bytes) {
    var text = "";
    bytes.forEach(function (b) { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString() {
    return base64url(crypto.getRandomValues(new Uint8Array(32)));
  }

  function redirectUri() {
    return location.origin + location.pathname;
  }

  function storedToken() {
    try {
      var stored = JSON.parse(sessionStorage.getItem(TOKEN) || "null");
      if (stored && stored.value && stored.expires > Date.now()) return stored.value;
    } catch (e) { /* treated as signed out */ }
    sessionStorage.removeItem(TOKEN);
    return null;
  }

  function startSignIn() {
    var verifier = randomString();
    var state = randomString();
    crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)).then(function (hash) {
      sessionStorage.setItem(PKCE, JSON.stringify({ verifier: verifier, state: state }));
      var params = new URLSearchParams({
        response_type: "code",
        client_id: signin.clientId,
        redirect_uri: redirectUri(),
        scope: signin.scope,
        state: state,
        code_challenge: base64url(new Uint8Array(hash)),
        code_challenge_method: "S256"
      });
      location.assign(signin.authorize + (signin.authorize.indexOf("?") < 0 ? "?" : "&") + params);
    });
  }

  // Back from the issuer with ?code=...&state=...: redeem the code.
  function finishSignIn(params) {
    var pending = null;
    try { pending = JSON.parse(sessionStorage.getItem(PKCE) || "null"); } catch (e) { pending = null; }
    sessionStorage.removeItem(PKCE);
    history.replaceState(null, "", location.pathname);
    if (params.get("error")) {
      return Promise.reject(new Error("The sign-in was cancelled or refused. Sign in again."));
    }
    if (!pending || pending.state !== params.get("state")) {
      return Promise.reject(new Error("The sign-in could not be completed. Sign in again."));
    }
    setStatus("Signing you in…");
    return fetch(signin.token, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: redirectUri(),
        client_id: signin.clientId,
        code_verifier: pending.verifier
      })
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        var token = body[signin.bearer];
        if (!response.ok || !token) throw new Error("The sign-in could not be completed. Sign in again.");
        var seconds = Number(body.expires_in) > 0 ? Number(body.expires_in) : 3600;
        sessionStorage.setItem(TOKEN, JSON.stringify({ value: token, expires: Date.now() + seconds * 1000 - 30000 }));
        setStatus("");
      });
    });
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN);
    render(message || "You have signed out.");
  }

  // ------------------------------------------------------------ state

  function setStatus(text) {
    status.textContent = text;
  }

  // Shows the form, or the sign-in prompt when sign-in is configured and no
  // token is held.
  function render(signedOutMessage) {
    var needsSignIn = !!signin && !storedToken();
    signedOut.hidden = !needsSignIn;
    form.hidden = needsSignIn;
    account.hidden = !signin || needsSignIn;
    if (needsSignIn) {
      result.hidden = true;
      signedOutText.textContent = signedOutMessage || "You need to sign in before you can create an account.";
    }
  }

  // ------------------------------------------------------------ submission

  var pending = false;
  // One key per submission. A retry of the same name after an outcome that
  // may have created the account (5xx, no answer) reuses it.
  var attempt = null;

  function setPending(on) {
    pending = on;
    submit.disabled = on;
    submit.setAttribute("aria-disabled", on ? "true" : "false");
    submit.textContent = on ? "Creating account…" : "Create account";
  }

  function onSubmit(event) {
    event.preventDefault();
    if (pending) return;
    var token = null;
    if (signin) {
      token = storedToken();
      if (!token) { signOut("Your sign-in has expired. Sign in again."); return; }
    }
    var name = input.value;
    if (!attempt || attempt.name !== name) {
      attempt = { name: name, key: crypto.randomUUID() };
    }
    clearErrors();
    result.hidden = true;
    setPending(true);
    setStatus("Creating the account…");
    var headers = { "Content-Type": "application/json", Accept: "application/json", "Idempotency-Key": attempt.key };
    if (token) headers.Authorization = "Bearer " + token;
    fetch(form.getAttribute("action"), { method: "POST", headers: headers, body: JSON.stringify({ Name: name }) })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          answer(response, body);
        });
      }, function () {
        setStatus("");
        showErrors(words("NetworkError"), false);
      })
      .then(function () { setPending(false); });
  }

  function answer(response, body) {
    setStatus("");
    if (response.status === 201 && body.AccountId) {
      attempt = null;
      accountId.textContent = body.AccountId;
      result.hidden = false;
      form.hidden = true;
      setStatus("Account created. Account ID " + body.AccountId);
      result.focus();
      return;
    }
    var code = body.code || "HTTP" + response.status;
    var retryAfter = Number(response.headers.get("Retry-After")) || 0;
    if (response.status < 500) attempt = null; // nothing was created: a new submission gets a new key
    if (response.status === 401) {
      signOut(words(code));
      return;
    }
    showErrors(words(code, retryAfter), FIELD_CODES.indexOf(code) >= 0);
  }

  function copyId() {
    var id = accountId.textContent;
    var done = function () { setStatus("Account ID copied"); };
    var fallback = function () {
      var range = document.createRange();
      range.selectNodeContents(accountId);
      var selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      setStatus("The account ID is selected: press Ctrl+C or ⌘C to copy it");
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(id).then(done, fallback);
    } else {
      fallback();
    }
  }

  function another(event) {
    event.preventDefault();
    result.hidden = true;
    form.hidden = false;
    input.value = "";
    updateCount();
    setStatus("");
    input.focus();
  }

  // ------------------------------------------------------------ start

  form.addEventListener("submit", onSubmit);
  input.addEventListener("input", updateCount);
  document.getElementById("copy").addEventListener("click", copyId);
  document.getElementById("another").addEventListener("click", another);
  document.getElementById("sign-in").addEventListener("click", startSignIn);
  document.getElementById("sign-out").addEventListener("click", function () { signOut(); });
  updateCount();
  countStatus.textContent = "";

  var params = new URLSearchParams(location.search);
  if (signin && (params.has("code") || params.has("error"))) {
    finishSignIn(params).then(function () {
      render();
      setStatus("You are signed in.");
      input.focus();
    }, function (error) {
      setStatus("");
      render(error.message);
    });
  } else {
    render();
  }
  signedInAs.textContent = "Signed in";
})();
