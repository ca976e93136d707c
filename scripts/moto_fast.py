#!/usr/bin/env python3
"""moto_server for the tests (`scripts/moto-server`, MOTO_SERVER) and `make bulk-demo`,
with local fixes to moto's SQS and DynamoDB (moto 5.x).

Run as `python scripts/moto_fast.py -H 127.0.0.1 -p PORT` (the same arguments as
moto_server). Nothing here changes what an API call answers; it changes what it costs and
closes one race:

1. moto checks a message's retention period on every receive by building *all* the queue's
   attributes three times (ApproximateNumberOfMessages & co. walk every message of the
   queue, calling datetime.now for each): a receive of 10 costs ~30 passes over the queue.
   Here the check reads the queue's MessageRetentionPeriod directly.
2. moto's clock (`unix_time`, `unix_time_millis` without an argument) goes through two
   naive datetimes and a subtraction; in moto.sqs.models it is `time.time()` here (the same
   number). Each visible/delayed test of each message calls it.
3. `Queue.delete_message` rebuilds the message list without the queue's lock, so a message
   appended by a concurrent SendMessage in between is lost (the 2-3 replies per 10,000
   the bulk demo lost). Here the rebuild holds the lock that `add_message` takes.

5. DynamoDB's TransactWriteItems deep-copies the table once per item it carries, before
   anything else (its rollback on a cancelled transaction): O(table) of Python per call,
   under the GIL that every other request waits on (96 ms at 1,000 items, against 2.8 ms
   for a PutItem). Here that snapshot copies the table's index of items, not the items:
   moto's Put and Delete replace an item rather than change it, so restoring the snapshot
   gives the same state for them (an Update in a transaction would change the item in
   place; the function's transactions carry Puts only).

Also, for every service: no per-request access log (werkzeug's INFO line for every call),
and the list of a response class's methods, which moto rebuilds with inspect.getmembers on
every call, is computed once per class.

If moto's internals are not what these patches expect, it says so and runs moto unpatched.
"""
import functools
import logging
import sys
import time


def patch():
    from moto.sqs import models

    queue_cls, backend_cls = models.Queue, models.SQSBackend
    needed = [(models, "unix_time"), (models, "unix_time_millis"),
              (queue_cls, "delete_message"), (queue_cls, "add_message"),
              (backend_cls, "is_message_valid_based_on_retention_period")]
    missing = [name for owner, name in needed if not hasattr(owner, name)]
    if missing:
        return f"moto internals changed ({', '.join(missing)} missing)"

    orig_unix_time, orig_unix_time_millis = models.unix_time, models.unix_time_millis

    def unix_time(dt=None):
        return time.time() if dt is None else orig_unix_time(dt)

    def unix_time_millis(dt=None):
        return time.time() * 1000.0 if dt is None else orig_unix_time_millis(dt)

    models.unix_time, models.unix_time_millis = unix_time, unix_time_millis

    def is_message_valid_based_on_retention_period(self, queue_name, message):
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()

    backend_cls.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period

    orig_delete = queue_cls.delete_message

    def delete_message(self, receipt_handle):
        lock = getattr(self, "_messages_lock", None)
        if lock is None:
            return orig_delete(self, receipt_handle)
        with lock:
            return orig_delete(self, receipt_handle)

    queue_cls.delete_message = delete_message

    # 4. Every call lists the response class's methods (inspect.getmembers) to find its
    #    action; classes do not change while the server runs, so remember the list.
    from moto.core import responses
    if hasattr(responses, "method_names_from_class"):
        responses.method_names_from_class = functools.lru_cache(maxsize=None)(
            responses.method_names_from_class)
    return None


def patch_dynamodb():
    import copy as copy_module
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.table import Table

    if getattr(models, "copy", None) is not copy_module:
        return "moto.dynamodb.models no longer imports copy"

    def snapshot(value, memo=None):
        if not isinstance(value, Table):
            return copy_module.deepcopy(value, memo)
        table = copy_module.copy(value)
        table.items = copy_module.copy(value.items)  # a defaultdict, with its factory
        for key, inner in table.items.items():
            if isinstance(inner, dict):  # a table with a range key: {range: item}
                table.items[key] = dict(inner)
        return table

    shim = types.ModuleType("copy")
    shim.__dict__.update(copy_module.__dict__)
    shim.deepcopy = snapshot
    models.copy = shim
    return None


def main():
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for fix in (patch, patch_dynamodb):
        try:
            problem = fix()
        except Exception as e:  # an unexpected moto: run it as it is
            problem = f"{type(e).__name__}: {e}"
        if problem:
            print(f"moto_fast: {problem}; running that part of moto unpatched",
                  file=sys.stderr, flush=True)
    from moto.server import main as moto_main
    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
