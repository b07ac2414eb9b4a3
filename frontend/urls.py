from django.urls import path

from . import views

app_name = "frontend"
urlpatterns = [
    path("t/<slug:slug>/topics/", views.topic_tree, name="topic-tree"),
    path("t/<slug:slug>/retained/", views.retained_detail, name="retained-detail"),
    path("t/<slug:slug>/retained/clear", views.clear_retained_view, name="retained-clear"),
    path("t/<slug:slug>/devices/<str:name>/retained/", views.device_retained, name="device-retained"),
]
