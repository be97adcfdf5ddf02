"""\\Noselect placeholder folders, and subscriptions as names apart from folders (RFC 3501
§6.3.4, §6.3.6; RFC 5258 \\NonExistent \\Subscribed)."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def subscriptions_from_folders(apps: Any, schema_editor: Any) -> None:
    Folder = apps.get_model("mailcore", "Folder")
    Subscription = apps.get_model("mailcore", "Subscription")
    rows = Folder.objects.filter(subscribed=True).values_list("account_id", "name")
    Subscription.objects.bulk_create(
        (Subscription(account_id=account_id, name=name) for account_id, name in rows.iterator()),
        batch_size=1000, ignore_conflicts=True,
    )


def folders_from_subscriptions(apps: Any, schema_editor: Any) -> None:
    Folder = apps.get_model("mailcore", "Folder")
    Subscription = apps.get_model("mailcore", "Subscription")
    Folder.objects.update(subscribed=False)
    for account_id, name in Subscription.objects.values_list("account_id", "name").iterator():
        Folder.objects.filter(account_id=account_id, name=name).update(subscribed=True)


class Migration(migrations.Migration):

    dependencies = [
        ("mailcore", "0004_message_unindexed"),
    ]

    operations = [
        migrations.AddField(
            model_name="folder",
            name="noselect",
            field=models.BooleanField(default=False),
        ),
        migrations.CreateModel(
            name="Subscription",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=1000)),
                ("account", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="subscriptions", to="mailcore.account")),
            ],
            options={
                "ordering": ["account", "name"],
                "constraints": [models.UniqueConstraint(fields=("account", "name"), name="subscription_unique_name")],
            },
        ),
        migrations.RunPython(subscriptions_from_folders, folders_from_subscriptions),
        migrations.RemoveField(
            model_name="folder",
            name="subscribed",
        ),
        migrations.AddField(
            model_name="message",
            name="received_tz",
            field=models.SmallIntegerField(default=0),
        ),
    ]
