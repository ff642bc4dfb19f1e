"""How fast the campaign loop queues and sends.

1. The abandonment scan: N open baskets (default 100,000), each with a line and an owner
   with an account, a cart-abandonment campaign (1 hour; holdout 10 %, global control 5 %)
   on an email channel. Times ``triggers_scan`` + ``decision_round`` two hours later, up to
   the send tasks published (to an in-memory broker) after the commit. Target: <= 10 s.
   With ``--workers N`` (PostgreSQL), a second run on fresh data times the round as the
   beat tick runs it: ``decision_round_shard`` per customer-id range of
   DECISION_SHARD_SIZE, taken by N worker processes (as one Celery worker with
   ``--concurrency N``), from the shards handed out until the last one committed. SQLite
   takes one writer at a time, so shards there would only queue behind each other.
2. The send rate: the first M of those queued emails (default 2,000) rendered (basket lines,
   tracked links, open pixel, unsubscribe headers) and sent through ``EmailChannel`` over
   SMTP to a local server (aiosmtpd when installed, else a minimal threaded one here), in
   batches of SEND_BATCH_SIZE as one worker runs them, claimed SEND_CLAIM_SIZE per commit;
   side by side, the M before them with one claim per commit (``SEND_CLAIM_SIZE = 1``).
   Target: >= 200 emails/s.

    python benchmarks/bench_delivery.py [--baskets 100000] [--emails 2000]
        [--database sqlite|postgres|both] [--workers N]

Each database runs in its own process on a fresh database: a temporary SQLite file, or a
throw-away PostgreSQL database `journeys_bench_delivery` on 127.0.0.1 (user postgres).
"""

import argparse
import datetime as dt
import json
import os
import socketserver
import threading
import time

import _common

DATABASE = "journeys_bench_delivery"
BATCH = 5000

TEXT = (
    "Hi {{ customer.first_name }}, you left these behind:\n"
    "{% for line in basket.lines %}- {{ line.name }} x {{ line.quantity }}: {{ line.price }} {{ basket.currency }}\n"
    "{% endfor %}Back to your basket: {{ basket.restore_url }}\nUnsubscribe: {{ unsubscribe_url }}\n"
    "{{ shop.postal_address }}"
)
HTML = (
    "<html><body><p>Hi {{ customer.first_name }}, you left these behind:</p><table>"
    "{% for line in basket.lines %}<tr><td><a href=\"{{ line.url }}\">{{ line.name }}</a></td>"
    "<td>{{ line.quantity }}</td><td>{{ line.price }}</td></tr>{% endfor %}</table>"
    "<p><a href=\"{{ basket.restore_url }}\">Back to your basket</a></p>"
    "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a> · {{ shop.postal_address }}</p></body></html>"
)


# --- a local SMTP server --------------------------------------------------------------------


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's smtplib client: EHLO, MAIL, RCPT, DATA, RSET, QUIT."""

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 bench ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line[:4].upper()
            if command == b"EHLO":
                self.reply("250-bench\r\n250 8BITMIME")  # one write: no wait on Nagle's algorithm
            elif command == b"HELO":
                self.reply("250 bench")
            elif command == b"DATA":
                self.reply("354 go ahead")
                tail = b""
                while not tail.endswith(b"\r\n.\r\n"):  # read the message in large chunks
                    chunk = self.rfile.read1(65536)
                    if not chunk:
                        return
                    tail = (tail + chunk)[-5:]
                with self.server.counter.get_lock():
                    self.server.counter.value += 1
                self.reply("250 queued")
            elif command == b"QUIT":
                self.reply("221 bye")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                self.reply("250 ok")


class LocalSMTP:
    """The SMTP server, in its own process (as a real one would be): it must not take the
    benchmark's interpreter lock. ``received`` counts the messages it accepted."""

    def __enter__(self):
        import multiprocessing

        self.counter = multiprocessing.Value("i", 0)
        ready = multiprocessing.Event()
        self.port_value = multiprocessing.Value("i", 0)
        self.process = multiprocessing.Process(target=_serve, args=(self.counter, self.port_value, ready), daemon=True)
        self.process.start()
        ready.wait(30)
        self.port = self.port_value.value
        self.kind = _server_kind()
        return self

    @property
    def received(self):
        return self.counter.value

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.join(5)


def _server_kind():
    try:
        import aiosmtpd  # noqa: F401

        return "aiosmtpd, own process"
    except ImportError:
        return "threaded socketserver, own process"


def _serve(counter, port_value, ready):
    with _LocalSMTPServer(counter) as server:
        port_value.value = server.port
        ready.set()
        threading.Event().wait()


class _LocalSMTPServer:
    def __init__(self, counter):
        self.counter = counter

    def __enter__(self):
        try:
            from aiosmtpd.controller import Controller

            counter = self.counter

            class Handler:
                async def handle_DATA(self, server, session, envelope):
                    with counter.get_lock():
                        counter.value += 1
                    return "250 queued"

            self.controller = Controller(Handler(), hostname="127.0.0.1", port=0)
            self.controller.start()
            self.port = self.controller.server.sockets[0].getsockname()[1]
            self.kind = "aiosmtpd"
        except ImportError:
            self.controller = None
            self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
            self.server.daemon_threads = True
            self.server.counter = self.counter
            self.port = self.server.server_address[1]
            threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        if self.controller:
            self.controller.stop()
        else:
            self.server.shutdown()


# --- in the child process ---------------------------------------------------------------------


def django_setup(database_url, migrate=True):
    _common.django_setup(database_url, broker="memory://")  # tasks are published, not run in process
    from django.conf import settings
    from django.core.management import call_command

    settings.LOGGING_CONFIG = None
    import logging

    logging.disable(logging.INFO)
    if migrate:
        call_command("migrate", verbosity=0)


def generate(baskets, smtp_port):
    """Users, customers, open baskets with one line each; the channel and the campaign."""
    from django.apps import apps
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from oscar.test.factories import create_product

    from oscar_journeys.models import Campaign, CampaignChannel, CampaignStep, Channel, Customer, MessageTemplate

    User = get_user_model()
    Basket, Line = apps.get_model("basket", "Basket"), apps.get_model("basket", "Line")
    product = create_product(title="Trail runner", price="45.00", num_in_stock=10**6, upc="TR-1")
    stock = product.stockrecords.first()
    for start in range(0, baskets, BATCH):
        n = range(start, min(start + BATCH, baskets))
        users = User.objects.bulk_create(
            [User(username=f"u{i}", email=f"shopper{i}@example.com", password="!", first_name=f"S{i}") for i in n]
        )
        if users[0].pk is None:
            users = list(User.objects.filter(username__in=[f"u{i}" for i in n]).order_by("pk"))
        Customer.objects.bulk_create(
            [Customer(user_id=u.pk, email=u.email, first_name=u.first_name) for u in users], batch_size=BATCH
        )
        made = Basket.objects.bulk_create([Basket(owner_id=u.pk, status="Open") for u in users], batch_size=BATCH)
        if made[0].pk is None:
            made = list(Basket.objects.filter(owner_id__in=[u.pk for u in users]).order_by("pk"))
        Line.objects.bulk_create(
            [
                Line(basket_id=b.pk, line_reference=f"{product.pk}_{stock.pk}", product=product, stockrecord=stock,
                     quantity=1 + b.pk % 3, price_currency="GBP", price_excl_tax="37.50", price_incl_tax="45.00")
                for b in made
            ],
            batch_size=BATCH,
        )
    channel = Channel.objects.create(
        name="Email", kind="email", backend="oscar_journeys.channels.email.EmailChannel",
        options={"from_email": "Shop <shop@example.com>", "email_backend": "django.core.mail.backends.smtp.EmailBackend",
                 "host": "127.0.0.1", "port": smtp_port},
    )
    campaign = Campaign.objects.create(name="Cart", trigger="cart_abandoned", holdout_percent=10,
                                       created_at=timezone.now() - dt.timedelta(days=1))
    CampaignChannel.objects.create(campaign=campaign, channel=channel)
    step = CampaignStep.objects.create(campaign=campaign, position=1, delay_value=1, delay_unit="hours")
    MessageTemplate.objects.create(step=step, channel=channel, subject="You left something behind",
                                   body_text=TEXT, body_html=HTML)


def _shard_worker(database_url, now_iso, ready, tasks, results):
    """A worker process: Django set up before the clock starts (as a Celery worker is
    running before the tick), then ``decision_round_shard``'s work for each range it takes."""
    django_setup(database_url, migrate=False)
    from django.db import connection

    from oscar_journeys.services.decisions import decision_round

    connection.ensure_connection()
    ready.put(True)
    now = dt.datetime.fromisoformat(now_iso)
    while (shard := tasks.get()) is not None:
        result = decision_round(now=now, customer_range=shard)
        results.put({"decisions": result.decisions, "messages": result.messages, "seconds": result.seconds})


def sharded_round(database_url, now, shards, workers):
    """Run ``shards`` on ``workers`` processes; return the wall time from the first shard
    handed out to the last committed, and the totals."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ready, tasks, results = context.Queue(), context.Queue(), context.Queue()
    processes = [
        context.Process(target=_shard_worker, args=(database_url, now.isoformat(), ready, tasks, results))
        for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    started = time.perf_counter()
    for shard in shards:
        tasks.put(shard)
    done = [results.get(timeout=600) for _ in shards]
    seconds = time.perf_counter() - started
    for _ in processes:
        tasks.put(None)
    for process in processes:
        process.join(30)
    return {"seconds": seconds, "shards": len(shards), "workers": workers, "decisions": sum(d["decisions"] for d in done),
            "messages": sum(d["messages"] for d in done)}


def run(database_url, baskets, emails, workers=0):
    with LocalSMTP() as smtp:
        django_setup(database_url)
        from django.db import connection
        from django.test import override_settings
        from django.utils import timezone

        from oscar_journeys import app_settings
        from oscar_journeys.models import Message
        from oscar_journeys.services.decision_data import due_customer_ranges
        from oscar_journeys.services.decisions import decision_round
        from oscar_journeys.services.delivery import messages_send
        from oscar_journeys.services.triggers import triggers_scan

        started = time.perf_counter()
        generate(baskets, smtp.port)
        generated = time.perf_counter() - started
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
                # The generator writes about a gigabyte of WAL: flush it now, so that the
                # checkpoint it makes due does not land in the timed part.
                cursor.execute("CHECKPOINT")
        now = timezone.now() + dt.timedelta(hours=2)

        started = time.perf_counter()
        scanned = triggers_scan(now=now)
        scan_seconds = time.perf_counter() - started
        if workers:
            shards = due_customer_ranges(now=now, shard_size=int(app_settings.DECISION_SHARD_SIZE))
            connection.close()
            sharded = sharded_round(database_url, now, shards, workers)
            return {"generated": generated, "enrolled": sum(scanned.values()), "scan": scan_seconds, **sharded}
        started = time.perf_counter()
        result = decision_round(now=now)
        total = scan_seconds + time.perf_counter() - started

        queued = list(Message.objects.filter(status="queued").order_by("id").values_list("id", flat=True)[: 2 * emails])
        size = int(app_settings.SEND_BATCH_SIZE)

        def send(ids):
            started = time.perf_counter()
            sent = 0
            for start in range(0, len(ids), size):
                sent += messages_send(message_ids=ids[start : start + size], now=now).sent
            return sent, time.perf_counter() - started

        # Side by side: the first M with one claim (one commit) per message, the next M as
        # configured (SEND_CLAIM_SIZE per commit).
        claim_size = int(app_settings.SEND_CLAIM_SIZE)
        with override_settings(OSCAR_JOURNEYS_SEND_CLAIM_SIZE=1):
            single_sent, single_seconds = send(queued[:emails])
        sent, send_seconds = send(queued[emails:])
        deadline = time.monotonic() + 10
        while smtp.received < single_sent + sent and time.monotonic() < deadline:
            time.sleep(0.05)
        return {
            "single_sent": single_sent, "single_seconds": single_seconds, "claim_size": claim_size,
            "vendor": connection.vendor, "generated": generated, "enrolled": sum(scanned.values()),
            "scan": scan_seconds, "round": result.seconds, "total": total, "decisions": result.decisions,
            "outcomes": dict(result.outcomes), "messages": result.messages,
            "timings": {k: round(v, 2) for k, v in result.timings.items()}, "sent": sent,
            "received": smtp.received, "send_seconds": send_seconds, "smtp": smtp.kind,
        }


# --- the parent: one child process per database (see _common) ------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baskets", type=int, default=100_000)
    parser.add_argument("--emails", type=int, default=2000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, default=0,
                        help="also time the round as N worker processes deciding the shards (PostgreSQL)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(run(options.child, options.baskets, options.emails, options.workers)))
        return
    databases = ["sqlite", "postgres"] if options.database == "both" else [options.database]
    for database in databases:
        with _common.scratch_database(database, DATABASE) as url:
            got = _common.run_child(
                __file__, url, "--baskets", options.baskets, "--emails", options.emails, label=database
            )
        print(f"[{database}] abandonment scan: {options.baskets:,} open baskets -> {got['enrolled']:,} enrolled, "
              f"{got['decisions']:,} decisions {got['outcomes']}, {got['messages']:,} messages queued in "
              f"{got['total']:.2f} s (scan {got['scan']:.2f} s + decision round {got['round']:.2f} s: "
              f"{got['timings']}); "
              f"target <= 10 s  [data generated in {got['generated']:.0f} s]", flush=True)
        rate = got["sent"] / got["send_seconds"] if got["send_seconds"] else 0
        single = got["single_sent"] / got["single_seconds"] if got["single_seconds"] else 0
        print(f"[{database}] send rate: {got['sent']:,} emails rendered and sent over SMTP ({got['smtp']}, "
              f"{got['received']:,} received in all) in {got['send_seconds']:.2f} s = {rate:.0f} emails/s with "
              f"{got['claim_size']} claims per commit; one claim per commit, the {got['single_sent']:,} before: "
              f"{single:.0f} emails/s (ratio {rate / single if single else 0:.2f}); target >= 200/s  "
              f"[load avg {os.getloadavg()[0]:.1f}]", flush=True)
        if options.workers and database == "postgres":
            with _common.scratch_database(database, DATABASE) as url:
                got = _common.run_child(__file__, url, "--baskets", options.baskets, "--workers", options.workers,
                                        label=f"{database} with workers")
            print(f"[{database}] with {got['workers']} workers: scan {got['scan']:.2f} s + {got['shards']} "
                  f"decision_round_shard tasks {got['seconds']:.2f} s = {got['scan'] + got['seconds']:.2f} s, "
                  f"{got['decisions']:,} decisions, {got['messages']:,} messages queued; target <= 10 s", flush=True)


if __name__ == "__main__":
    main()
