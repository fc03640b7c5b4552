from django.db import migrations


def forwards(apps, schema_editor):
    # Free includes the API: trying the product from a script is part of trying it; quotas bound it.
    apps.get_model("subscriptions", "Plan").objects.filter(code="free").update(api_access=True)


def backwards(apps, schema_editor):
    apps.get_model("subscriptions", "Plan").objects.filter(code="free").update(api_access=False)


class Migration(migrations.Migration):
    dependencies = [("subscriptions", "0002_seed_plans")]
    operations = [migrations.RunPython(forwards, backwards)]
