"""schemathesis hooks for `make test-openapi` (loaded through SCHEMATHESIS_HOOKS).

cargo-lambda's emulator answers 500 itself, without invoking the function, when a
header value holds bytes above 0x7F or a text body (JSON, form) is not UTF-8: it
cannot put them into the Function URL event. Such cases would test the emulator,
not the function, so they are dropped here, in every phase. The handler's own
answers to them (400 IdempotencyKeyInvalid; bodies that are not UTF-8, inside
base64 as Lambda delivers them) are asserted by the hostile-input corpus.
"""
import schemathesis


def _utf8(body) -> bool:
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


@schemathesis.hook
def filter_case(context, case):
    headers_ascii = all(str(value).isascii() for value in (case.headers or {}).values())
    return headers_ascii and _utf8(case.body)
