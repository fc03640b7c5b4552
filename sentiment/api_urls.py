
app_name = "sentiment_api"
urlpatterns: list = []
