// The onboarding form's one script: OpenID Connect sign-in (authorization code
// + PKCE, public client) and sign-out at the issuer, who is signed in (from the
// ID token), the JSON submission with the bearer token and one Idempotency-Key
// per submission (kept, with the typed name, across a sign-in that expired),
// the character count, and every answer shown in plain words, those of API
// Gateway (no problem `code`) included. No framework, no build step, nothing
// from another origin. Without this script the form still posts (urlencoded)
// and the function answers HTML, where no sign-in is needed; where it is, the
// page's <noscript> says so and the form stays hidden.
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
  var signedOutTitle = document.getElementById("signed-out-title");
  var account = document.getElementById("account");
  var signedInAs = document.getElementById("signed-in-as");
  var accountName = document.getElementById("account-name");

  var signin = null;
  try {
    signin = main.dataset.signin ? JSON.parse(main.dataset.signin) : null;
  } catch (e) {
    signin = null;
  }

  // sessionStorage: the tab's sign-in, the PKCE exchange in flight, the name
  // and Idempotency-Key of a submission that met an expired sign-in, and a
  // mark left while the issuer signs the person out.
  var TOKEN = "chime-onboard.token";
  var PKCE = "chime-onboard.pkce";
  var DRAFT = "chime-onboard.draft";
  var SIGNED_OUT = "chime-onboard.signed-out";

  // What the signed-out panel says, by why nobody is signed in.
  var FIRST = { title: "Sign in first", text: "You need to sign in before you can create an account." };
  var EXPIRED = { title: "Your sign-in has expired", text: "Sign in again to carry on." };
  var REFUSED = { title: "Your sign-in was not accepted", text: "Sign in again to carry on." };
  var SIGNED_OUT_STATE = signin && signin.logout
    ? { title: "You have signed out", text: "Sign in to create an account." }
    : { title: "You have signed out of this page",
        text: "Your organisation's sign-in may still remember you: to sign in as someone else, close the browser first." };

  // ------------------------------------------------------------ words

  var FIELD_CODES = ["NameMissing", "NameEmpty", "NameNotString", "NameTooLong", "NameInvalidCharacter"];

  function wait(seconds) {
    if (seconds === 1) return "Try again in 1 second.";
    if (seconds > 1) return "Try again in " + seconds + " seconds.";
    return "Try again in a minute.";
  }

  var NOT_ALLOWED = "You are signed in, but you do not have permission to create accounts. " +
    "Ask an administrator of this service to give you access, then sign out and sign in again.";

  // The same words the function's HTML answers use (src/web.rs, `words`);
  // null for a code this page does not know.
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
      case "InsufficientScope":
        return NOT_ALLOWED;
      case "NetworkError":
        return "The service could not be reached. Check your connection. " + wait(0);
      default:
        return null;
    }
  }

  // Any answer in words: by its problem `code`, else (API Gateway answers
  // before the function runs, and sends no `code`) by its status, always with
  // what to do next.
  function describe(status, code, retryAfter) {
    var known = code ? words(code, retryAfter) : null;
    if (known) return known;
    if (status === 401) return "Your sign-in has expired — sign in again.";
    if (status === 403) return NOT_ALLOWED;
    if (status === 429) return "The service is busy right now. " + wait(retryAfter);
    if (status === 503) return "The service is unavailable right now. " + wait(retryAfter);
    if (status === 504) {
      return "The service did not answer in time, so the account may not have been created. " + wait(retryAfter);
    }
    if (status >= 500) {
      return "Something went wrong in the service, so the account may not have been created. " + wait(retryAfter);
    }
    return "The service could not handle this request. Reload the page and try again. If that does not work, " +
      "tell the team that runs this service that it answered with error " + status + (code ? " (" + code + ")" : "") + ".";
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

  function readJson(key) {
    try {
      return JSON.parse(sessionStorage.getItem(key) || "null");
    } catch (e) {
      return null;
    }
  }

  // Set when a sign-in held by the tab ran out: the panel then says so.
  var expiredOnLoad = false;

  // The tab's sign-in ({value, idToken, who, expires}), or null.
  function session() {
    var stored = readJson(TOKEN);
    if (stored && stored.value && stored.expires > Date.now()) return stored;
    if (stored) expiredOnLoad = true;
    sessionStorage.removeItem(TOKEN);
    return null;
  }

  function storedToken() {
    var current = session();
    return current ? current.value : null;
  }

  // Who the ID token names: its `name`, else `email`, else a user name, else
  // `sub`. Only shown, never trusted: the function verifies the bearer token.
  function whoIs(idToken) {
    try {
      var part = idToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
      var claims = JSON.parse(new TextDecoder().decode(bytes));
      var who = claims.name || claims.email || claims.preferred_username || claims["cognito:username"] || claims.sub;
      return typeof who === "string" && who ? who : null;
    } catch (e) {
      return null;
    }
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
        var idToken = typeof body.id_token === "string" ? body.id_token : null;
        sessionStorage.setItem(TOKEN, JSON.stringify({
          value: token,
          idToken: idToken,
          who: idToken ? whoIs(idToken) : null,
          expires: Date.now() + seconds * 1000 - 30000
        }));
        setStatus("");
      });
    });
  }

  // The issuer's sign-out: Cognito's /logout takes client_id and logout_uri;
  // an OpenID Connect end_session_endpoint takes post_logout_redirect_uri and
  // the ID token as a hint. Both come back to this page.
  function logoutUrl(idToken) {
    var params = new URLSearchParams({ client_id: signin.clientId });
    if (signin.logout.style === "cognito") {
      params.set("logout_uri", redirectUri());
    } else {
      params.set("post_logout_redirect_uri", redirectUri());
      if (idToken) params.set("id_token_hint", idToken);
    }
    var url = signin.logout.url;
    return url + (url.indexOf("?") < 0 ? "?" : "&") + params;
  }

  // "Sign out": forget everything the tab holds (the next person at this
  // machine sees no name and no key), then end the session at the issuer too,
  // so the next "Sign in" asks who is there.
  function signOut() {
    var current = readJson(TOKEN);
    [TOKEN, PKCE, DRAFT].forEach(function (key) { sessionStorage.removeItem(key); });
    attempt = null;
    input.value = "";
    updateCount();
    clearErrors();
    result.hidden = true;
    if (signin.logout) {
      sessionStorage.setItem(SIGNED_OUT, "1");
      location.assign(logoutUrl(current && current.idToken));
      return;
    }
    render(SIGNED_OUT_STATE);
    setStatus(SIGNED_OUT_STATE.title + ".");
    signedOut.focus();
  }

  // A sign-in that ran out (found before sending, or a 401): keep what was
  // typed and its Idempotency-Key for after the new sign-in, so the
  // submission is neither lost nor sent twice under two keys.
  function expire(state) {
    var name = input.value;
    if (name) {
      var key = attempt && attempt.name === name ? attempt.key : crypto.randomUUID();
      sessionStorage.setItem(DRAFT, JSON.stringify({ name: name, key: key }));
    }
    sessionStorage.removeItem(TOKEN);
    render({
      title: state.title,
      text: name ? state.text + " The account name you typed will still be here." : state.text
    });
    setStatus(state === EXPIRED ? "Your sign-in has expired — sign in again." : state.title + ". Sign in again.");
    signedOut.focus();
  }

  // After a new sign-in: the kept name, with the key it was first sent under.
  function restoreDraft() {
    var draft = readJson(DRAFT);
    sessionStorage.removeItem(DRAFT);
    if (!draft || typeof draft.name !== "string" || typeof draft.key !== "string") return false;
    input.value = draft.name;
    attempt = { name: draft.name, key: draft.key };
    updateCount();
    return true;
  }

  // ------------------------------------------------------------ state

  function setStatus(text) {
    status.textContent = text;
  }

  // Shows the form and who is signed in, or the sign-in panel (saying why)
  // when sign-in is configured and no sign-in is held.
  function render(state) {
    var current = signin ? session() : null;
    var needsSignIn = !!signin && !current;
    signedOut.hidden = !needsSignIn;
    form.hidden = needsSignIn || !result.hidden;
    account.hidden = !current;
    if (current) signedInAs.textContent = current.who ? "Signed in as " + current.who : "Signed in";
    if (needsSignIn) {
      result.hidden = true;
      state = state || (expiredOnLoad ? EXPIRED : FIRST);
      signedOutTitle.textContent = state.title;
      signedOutText.textContent = state.text;
    }
  }

  // ------------------------------------------------------------ submission

  var pending = false;
  // One key per submission. A retry of the same name after an outcome that
  // may have created the account (5xx, no answer, still in progress) or that
  // never reached it (401, 429) reuses it.
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
    var name = input.value;
    if (!attempt || attempt.name !== name) {
      attempt = { name: name, key: crypto.randomUUID() };
    }
    var token = null;
    if (signin) {
      token = storedToken();
      if (!token) { expire(EXPIRED); return; }
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
    var status = response.status;
    if (status === 201 && body.AccountId) {
      var name = body.Account && typeof body.Account.Name === "string" ? body.Account.Name : attempt.name.replace(TRIM, "");
      attempt = null;
      accountName.textContent = name;
      accountId.textContent = body.AccountId;
      result.hidden = false;
      form.hidden = true;
      setStatus("Account created: " + name + ". Account ID " + body.AccountId);
      result.focus();
      return;
    }
    var code = typeof body.code === "string" ? body.code : null;
    var retryAfter = Number(response.headers.get("Retry-After")) || 0;
    if (status === 401 && signin) {
      expire(code === "TokenInvalid" ? REFUSED : EXPIRED);
      return;
    }
    // Nothing was created and nothing is in flight: a new submission gets a
    // new key. Kept after 401, 409 and 429 (the same submission, sent again)
    // and after 5xx (it may have been created).
    if (status < 500 && [401, 409, 429].indexOf(status) < 0) attempt = null;
    showErrors(describe(status, code, retryAfter), FIELD_CODES.indexOf(code) >= 0);
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
  document.getElementById("sign-out").addEventListener("click", signOut);
  updateCount();
  countStatus.textContent = "";

  var params = new URLSearchParams(location.search);
  if (signin && (params.has("code") || params.has("error"))) {
    finishSignIn(params).then(function () {
      render();
      var kept = restoreDraft();
      setStatus(kept
        ? "You are signed in. The account name you typed is still here: select Create account to send it."
        : "You are signed in.");
      input.focus();
    }, function (error) {
      setStatus("");
      render({ title: "You are not signed in", text: error.message });
    });
  } else if (signin && sessionStorage.getItem(SIGNED_OUT)) {
    // Back from the issuer's sign-out.
    sessionStorage.removeItem(SIGNED_OUT);
    history.replaceState(null, "", location.pathname);
    render(SIGNED_OUT_STATE);
    setStatus(SIGNED_OUT_STATE.title + ".");
  } else {
    render();
  }
})();
