from django.db import migrations, models


class Migration(migrations.Migration):
    """ORCPT may be 500 characters long (RFC 3461 §4.2)."""

    dependencies = [("mailcore", "0005_folder_noselect_and_subscriptions")]

    operations = [
        migrations.AlterField(
            model_name="outboundrecipient",
            name="orcpt",
            field=models.CharField(blank=True, max_length=500),
        ),
    ]
