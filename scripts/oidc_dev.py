"""A local OpenID provider for `make dev` and the browser tests: PyPI's
`oidc-provider-mock` (authorization code flow, RS256 ID tokens, any client id,
a page where you type the user's `sub` and press "Authorize"), plus CORS headers
so the page can redeem its code at the token endpoint from another loopback
origin, as it does with Cognito's. Loopback only.

    python scripts/oidc_dev.py --port 9400

The issuer is http://127.0.0.1:<port>. Its access tokens are opaque, so the
function is told to take the ID token (WEB_SIGNIN_TOKEN=id) and to accept the
client id as audience. The mock does not check PKCE; Cognito does.
"""
from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain HTTP, loopback only

import oidc_provider_mock  # noqa: E402
from oidc_provider_mock import _app as mock_app  # noqa: E402

# The mock only knows confidential clients; the page is a public one, which
# authenticates at the token endpoint with its client id alone ("none").
mock_app.AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS = [
    "client_secret_basic", "client_secret_post", "none",
]


def app():
    flask_app = oidc_provider_mock.app(require_nonce=False, issue_refresh_token=False)

    @flask_app.after_request
    def cors(response):
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Headers"] = "content-type, accept"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
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
