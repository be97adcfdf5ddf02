from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("mailcore", "0004_message_unindexed")]

    operations = [
        migrations.AddField(
            model_name="outboundrecipient",
            name="interruptions",
            field=models.IntegerField(default=0),
        ),
    ]
