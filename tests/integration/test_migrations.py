from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_migrations_are_up_to_date():
    out = StringIO()
    try:
        call_command("makemigrations", "oscar_journeys", "--check", "--dry-run", stdout=out)
    except SystemExit:
        pytest.fail("Models changed without a migration:\n" + out.getvalue())


@pytest.mark.django_db(transaction=True)
def test_0008_gives_every_active_enrollment_with_a_next_step_its_due_step():
    import datetime as dt

    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = [("oscar_journeys", "0007_decision_candidates")], [("oscar_journeys", "0008_due_steps")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    Customer, Campaign = old.get_model("oscar_journeys", "Customer"), old.get_model("oscar_journeys", "Campaign")
    Enrollment = old.get_model("oscar_journeys", "Enrollment")
    customer = Customer.objects.create(email="a@example.com")
    campaign = Campaign.objects.create(name="Cart", trigger="cart_abandoned")
    due = dt.datetime(2025, 6, 2, 12, tzinfo=dt.timezone.utc)
    rows = {
        key: Enrollment.objects.create(customer=customer, campaign=campaign, trigger_key=key, triggered_at=due,
                                       status=status, next_due_at=at).pk
        for key, status, at in [("active", "active", due), ("active, no step", "active", None),
                                ("completed", "completed", None), ("exited", "exited", due)]
    }  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)

    with connection.cursor() as cursor:
        cursor.execute("SELECT enrollment_id, customer_id, due_at FROM oscar_journeys_duestep")
        (row,) = cursor.fetchall()
        assert row[:2] == (rows["active"], customer.pk)
        if connection.vendor == "postgresql":
            assert row[2] == due
            cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'oscar_journeys_enrollment'")
            assert cursor.fetchone()[0] == ["fillfactor=50"]
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("oscar_journeys"))
