
app_name = "imaging_api"
urlpatterns: list = []
