from django import forms

from subscriptions.models import Interval, Plan


class ChoosePlanForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    interval = forms.ChoiceField(choices=Interval.choices)

    def clean_plan(self) -> str:
        code = self.cleaned_data["plan"]
        if not Plan.objects.filter(code=code, is_public=True).exists():
            raise forms.ValidationError("Choose one of the plans on the pricing page.")
        return code
