from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [("mailcore", "0006_smtp_dsn")]

    operations = [
        migrations.AddField(
            model_name="account",
            name="keyboard_shortcuts",
            field=models.BooleanField(default=True),
        ),
    ]
