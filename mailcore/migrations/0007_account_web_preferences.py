from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("mailcore", "0004_message_unindexed")]

    operations = [
        migrations.AddField(
            model_name="account",
            name="keyboard_shortcuts",
            field=models.BooleanField(default=True),
        ),
    ]
