#!/usr/bin/env bash
# `make dev`: chime-local + moto_server (SQS, DynamoDB) + the function under
# `cargo lambda watch`, wired with the SDKs' standard endpoint variables, plus
# esm-local (crates/lambda-local) standing in for the SQS event source mapping: it
# runs the same debug binary under a loopback Runtime API, with Lambda's batch
# semantics, and restarts it after a rebuild; and a local OpenID provider the web form signs in
# with (DEV_AUTH=off: no sign-in). Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."

CHIME_PORT=${CHIME_LOCAL_PORT:-4580}
MOTO_PORT=${MOTO_PORT:-4566}
INVOKE_PORT=${INVOKE_PORT:-9000}
OIDC_PORT=${OIDC_PORT:-9400}
DEV_AUTH=${DEV_AUTH:-on}
VENV=${VENV:-.venv}
E2E_VENV=${E2E_VENV:-.venv-e2e}
CARGO_LAMBDA=${CARGO_LAMBDA:-$VENV/bin/cargo-lambda}
mkdir -p .dev

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

wait_port() { # name port
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "dev: $1 did not start on port $2 (see .dev/$1.log)" >&2; exit 1
}

cargo build -q -p chime-local --bin chime-local
cargo build -q -p lambda-local --bin esm-local
cargo build -q -p chime-onboard --bin chime-onboard
target/debug/chime-local --port "$CHIME_PORT" --state .dev/chime-local-state.json >.dev/chime-local.log 2>&1 &
pids+=($!)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >.dev/moto.log 2>&1 &
pids+=($!)
if [ "$DEV_AUTH" != off ]; then
  "$E2E_VENV/bin/python" scripts/oidc_dev.py --port "$OIDC_PORT" >.dev/oidc.log 2>&1 &
  pids+=($!)
fi
wait_port chime-local "$CHIME_PORT"
wait_port moto "$MOTO_PORT"
[ "$DEV_AUTH" = off ] || wait_port oidc "$OIDC_PORT"

MOTO="http://127.0.0.1:$MOTO_PORT"
eval "$("$VENV/bin/python" scripts/local_sqs.py --endpoint "$MOTO" setup)"
cat >.dev/function.env <<ENV
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AWS_ENDPOINT_URL_CHIME=http://127.0.0.1:$CHIME_PORT
AWS_ENDPOINT_URL_SQS=$MOTO
AWS_ENDPOINT_URL_DYNAMODB=$MOTO
REPLY_QUEUE_URL=$REPLY_QUEUE_URL
ALLOWED_REPLY_QUEUES=$REPLY_QUEUE_URL,${REPLY_QUEUE_URL%/*}/dev-bulk-*
IDEMPOTENCY_TABLE=$IDEMPOTENCY_TABLE
RUST_LOG=info
ENV
if [ "$DEV_AUTH" != off ]; then
  # The local provider's access tokens are opaque: the page sends its ID token,
  # whose audience is the client id.
  ISSUER="http://127.0.0.1:$OIDC_PORT"
  cat >>.dev/function.env <<ENV
AUTH_REQUIRED=true
AUTH_JWT_ISSUER=$ISSUER
AUTH_JWT_AUDIENCE=chime-onboard-web
WEB_SIGNIN_AUTHORIZE_URL=$ISSUER/oauth2/authorize
WEB_SIGNIN_TOKEN_URL=$ISSUER/oauth2/token
WEB_SIGNIN_CLIENT_ID=chime-onboard-web
WEB_SIGNIN_SCOPES="openid email profile"
WEB_SIGNIN_TOKEN=id
WEB_SIGNIN_LOGOUT_URL=$ISSUER/oauth2/end_session
ENV
fi

target/debug/esm-local --queue-url "$REQUEST_QUEUE_URL" --endpoint-url "$MOTO" \
  --function target/debug/chime-onboard --function-name chime-onboard --env-file .dev/function.env \
  --timeout-secs 30 --restart-on-rebuild --status-secs 60 >.dev/poller.log 2>&1 &
pids+=($!)

URL="http://127.0.0.1:$INVOKE_PORT/lambda-url/chime-onboard"
cat <<MSG

chime-onboard is starting (the first build takes a few minutes).
  form:        open $URL/
MSG
if [ "$DEV_AUTH" != off ]; then cat <<MSG
  sign in:     press "Sign in" on the form; the local OpenID provider (http://127.0.0.1:$OIDC_PORT)
               asks for a user: type any name (it becomes the token's sub) and press Authorize.
               curl needs a token too: POST /accounts without one is 401 (DEV_AUTH=off turns sign-in off).
MSG
fi
cat <<MSG
  create:      curl -i -X POST $URL/accounts -H 'content-type: application/json' -d '{"Name":"Acme"}'
  queue:       $VENV/bin/python -c "import boto3; boto3.client('sqs', endpoint_url='$MOTO', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing').send_message(QueueUrl='$REQUEST_QUEUE_URL', MessageBody='{\"Name\": \"Acme\", \"RequestId\": \"r-1\"}')"
  replies:     $REPLY_QUEUE_URL   (poller log: .dev/poller.log)
  bulk:        AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing cargo run -q -p onboard-bulk -- submit names.csv --queue $REQUEST_QUEUE_URL --reply-queue-prefix dev-bulk- --endpoint-url $MOTO --region us-east-1
  raw events:  $CARGO_LAMBDA lambda invoke chime-onboard --data-file events/sqs-standard-batch.json
  chime-local: http://127.0.0.1:$CHIME_PORT/_chime-local/accounts   (faults: POST /_chime-local/faults)
Logs of the helpers are in .dev/. Ctrl-C stops everything.

MSG
PATH="$PWD/$(dirname "$CARGO_LAMBDA"):$PATH" "$CARGO_LAMBDA" lambda watch -A 127.0.0.1 -P "$INVOKE_PORT" --env-file .dev/function.env
