from django.urls import path

from subscriptions import views

app_name = "subscriptions"
urlpatterns = [
    path("", views.index, name="index"),
    path("pricing/", views.pricing, name="pricing"),
    path("usage/", views.UsageView.as_view(), name="usage"),
    path("choose/", views.ChoosePlanView.as_view(), name="choose"),
    path("checkout/return/", views.checkout_return, name="checkout-return"),
    path("portal/", views.PortalView.as_view(), name="portal"),
    path("cancel/", views.CancelView.as_view(), name="cancel"),
    path("resume/", views.CancelView.as_view(resume=True), name="resume"),
    path("webhooks/stripe/", views.stripe_webhook, name="stripe-webhook"),
]
