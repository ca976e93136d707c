"""A local OpenID provider for `make dev` and the browser tests: PyPI's
`oidc-provider-mock` (authorization code flow, RS256 ID tokens, any client id,
a page where you type the user's `sub` and press "Authorize", users' claims set
with `PUT /users/<sub>`), plus what the page needs from a real issuer:

- CORS headers, so the page can redeem its code at the token endpoint from
  another loopback origin, as it does with Cognito's;
- a remembered session, as Cognito's hosted UI keeps one: once someone has
  authorized, the next authorization request goes straight through as them
  (a cookie on the issuer) until they sign out;
- sign-out that ends that session: the mock's OpenID Connect
  `end_session_endpoint` (`/oauth2/end_session`, which asks "End session" and
  goes back to `post_logout_redirect_uri`), and a Cognito-style `/logout`
  (`client_id` and `logout_uri`, straight back).

Loopback only.

    python scripts/oidc_dev.py --port 9400

The issuer is http://127.0.0.1:<port>. Its access tokens are opaque, so the
function is told to take the ID token (WEB_SIGNIN_TOKEN=id) and to accept the
client id as audience. The mock does not check PKCE; Cognito does.
"""
from __future__ import annotations

import argparse
import logging
import os
from urllib.parse import urlsplit

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP, loopback only

import flask  # noqa: E402
import oidc_provider_mock  # noqa: E402
from oidc_provider_mock import _app as mock_app  # noqa: E402

# The mock only knows confidential clients; the page is a public one, which
# authenticates at the token endpoint with its client id alone ("none").
mock_app.AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS = [
    "client_secret_basic", "client_secret_post", "none",
]

SESSION_COOKIE = "oidc_dev_session"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def remember_sessions(flask_app: flask.Flask) -> None:
    """Wraps the mock's authorization and end-session views with a session
    cookie: set when someone authorizes, honoured by the next authorization
    request, removed when the session ends."""
    name = f"{mock_app.blueprint.name}.{{}}"
    authorize = flask_app.view_functions[name.format("authorize")]
    end_session_confirm = flask_app.view_functions[name.format("end_session_confirm")]

    def authorize_with_session():
        request = flask.request
        user = mock_app.storage.get_user(request.cookies.get(SESSION_COOKIE, ""))
        if request.method == "GET" and user is not None:
            grant, redirect_uri = mock_app._validate_auth_request_client_params(request)
            answer = grant.create_authorization_response(redirect_uri, user)
            return mock_app.authorization.handle_response(*answer)
        response = flask.make_response(authorize())
        sub = request.form.get("sub") if request.method == "POST" else None
        if sub and response.status_code in (302, 303) and "code=" in (response.location or ""):
            response.set_cookie(SESSION_COOKIE, sub, httponly=True, samesite="Lax")
        return response

    def end_session_and_forget():
        response = flask.make_response(end_session_confirm())
        response.delete_cookie(SESSION_COOKIE)
        return response

    flask_app.view_functions[name.format("authorize")] = authorize_with_session
    flask_app.view_functions[name.format("end_session_confirm")] = end_session_and_forget

    @flask_app.get("/logout")
    def cognito_logout():
        # Cognito's /logout: client_id and logout_uri (one of the client's
        # sign-out URLs; here, any loopback URL), then straight back.
        client_id = flask.request.args.get("client_id")
        logout_uri = flask.request.args.get("logout_uri")
        if not client_id or not logout_uri:
            return "logout needs client_id and logout_uri\n", 400
        if urlsplit(logout_uri).hostname not in LOOPBACK:
            return "logout_uri must be a loopback URL\n", 400
        response = flask.redirect(logout_uri)
        response.delete_cookie(SESSION_COOKIE)
        return response


def app():
    flask_app = oidc_provider_mock.app(require_nonce=False, issue_refresh_token=False)
    remember_sessions(flask_app)

    @flask_app.after_request
    def cors(response):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = "content-type, accept"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, OPTIONS"
        return response

    return flask_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9400)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app().run(host="127.0.0.1", port=args.port, threaded=True, use_reloader=False, debug=False)


if __name__ == "__main__":
    main()
