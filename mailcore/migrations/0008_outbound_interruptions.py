from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("mailcore", "0007_account_web_preferences")]

    operations = [
        migrations.AddField(
            model_name="outboundrecipient",
            name="interruptions",
            field=models.IntegerField(default=0),
        ),
    ]
