from django import forms
from django.conf import settings

from sentiment.csv_import import FIELD_LABELS, FIELDS
from sentiment.models import RuleKind


class PasteForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 7, "placeholder": (
        "$NWC Northwind Capital beats earnings estimates and raises guidance\n"
        "Regulators open an investigation into Contoso's accounting")}), label="Texts")
    mode = forms.ChoiceField(choices=[("lines", "One text per line"), ("block", "The whole block is one text")],
                             initial="lines", widget=forms.RadioSelect, label="Split")
    explain = forms.BooleanField(required=False, initial=True, label="Explain scores (highlight the words)")


class CsvUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text=(
        f"Up to {settings.SENTIMENT_CSV_MAX_BYTES // 1_000_000} MB and {settings.SENTIMENT_CSV_MAX_ROWS:,} rows, "
        "with a header row. Any encoding; comma, semicolon or tab separated."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv,text/plain"}))


class CsvMappingForm(forms.Form):
    explain = forms.BooleanField(required=False, initial=True, label="Explain scores (highlight the words)")

    def __init__(self, *args, headers: list[str], initial_mapping: dict, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [("", "— not in the file —"), *[(h, h) for h in headers]]
        for field in FIELDS:
            self.fields[field] = forms.ChoiceField(choices=choices, required=field == "text",
                                                   label=FIELD_LABELS[field], initial=initial_mapping.get(field, ""))
        self.order_fields([*FIELDS, "explain"])

    def mapping(self) -> dict[str, str]:
        return {f: self.cleaned_data.get(f, "") for f in FIELDS}


class FeedForm(forms.Form):
    url = forms.URLField(label="Feed URL", max_length=1000, assume_scheme="https",
                         widget=forms.URLInput(attrs={"placeholder": "https://example.com/markets.rss"}))
    name = forms.CharField(required=False, max_length=200, label="Name")
    poll_interval_minutes = forms.IntegerField(min_value=settings.SENTIMENT_FEED_MIN_INTERVAL_MINUTES,
                                               max_value=24 * 60, initial=30, label="Poll every (minutes)")


class WatchlistForm(forms.Form):
    name = forms.CharField(max_length=120, widget=forms.TextInput(attrs={"placeholder": "e.g. Portfolio"}))
    description = forms.CharField(max_length=300, required=False)


class EntityForm(forms.Form):
    key = forms.CharField(max_length=100, label="Ticker", widget=forms.TextInput(attrs={"placeholder": "NWC"}))
    name = forms.CharField(max_length=200, required=False, label="Company name",
                           widget=forms.TextInput(attrs={"placeholder": "Northwind Capital"}))
    aliases = forms.CharField(required=False, label="Other names (comma-separated)",
                              widget=forms.TextInput(attrs={"placeholder": "Northwind, Northwind Group"}))


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    watchlist = forms.TypedChoiceField(coerce=int, label="Watchlist")
    entity_key = forms.CharField(max_length=100, required=False, label="Entity (ticker)",
                                 help_text="Empty: every company of the watchlist")
    kind = forms.ChoiceField(choices=RuleKind.choices, label="Trigger")
    threshold = forms.FloatField(initial=0.5, help_text="Negative share 0–1 (e.g. 0.5), or a z-score for spikes "
                                 "(e.g. 3)")
    window_hours = forms.IntegerField(min_value=1, max_value=720, initial=24, label="Window (hours)")
    min_volume = forms.IntegerField(min_value=1, initial=5, label="Minimum documents in the window")
    baseline_days = forms.IntegerField(min_value=1, max_value=90, initial=14, label="Baseline (days, spikes only)")
    cooldown_minutes = forms.IntegerField(min_value=0, initial=360, label="Cooldown (minutes)")
    email_recipients = forms.CharField(required=False, label="E-mail to", widget=forms.TextInput(
        attrs={"placeholder": "analyst@example.com, desk@example.com"}))
    webhook_url = forms.URLField(required=False, label="Webhook URL", max_length=1000, assume_scheme="https")

    def __init__(self, *args, watchlists, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["watchlist"].choices = [(w.pk, w.name) for w in watchlists]
