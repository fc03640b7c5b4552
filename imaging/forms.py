from django import forms


class FeedbackForm(forms.Form):
    """The clinician's verdict: correct, or the right label, with an optional comment."""

    is_correct = forms.TypedChoiceField(
        label="Is the prediction correct?", choices=[("true", "Correct"), ("false", "Not correct")],
        coerce=lambda value: value == "true", widget=forms.RadioSelect, initial="true")
    correct_label = forms.ChoiceField(label="Right label", required=False)
    comment = forms.CharField(label="Comment", required=False, max_length=2000,
                              widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Optional: what you see"}))

    def __init__(self, *args, labels: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["correct_label"].choices = [("", "Choose…")] + [(label, label) for label in labels or []]

    def clean(self):
        data = super().clean()
        if data.get("is_correct") is False and not data.get("correct_label"):
            self.add_error("correct_label", "Choose the right label when the prediction is not correct.")
        return data
