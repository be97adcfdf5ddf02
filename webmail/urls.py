from django.contrib import admin
from django.urls import path

from webmail.views import auth, compose, mailbox, message, settings

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("", mailbox.index, name="index"),
    path("sidebar/", mailbox.sidebar, name="sidebar"),
    path("f/<int:folder_id>/", mailbox.folder_view, name="folder"),
    path("f/<int:folder_id>/list/", mailbox.folder_list, name="folder_list"),
    path("f/<int:folder_id>/act/", mailbox.folder_action, name="folder_action"),
    path("f/<int:folder_id>/empty/", mailbox.folder_empty, name="folder_empty"),
    path("m/<int:message_id>/", message.message_view, name="message"),
    path("m/<int:message_id>/body/", message.message_body, name="message_body"),
    path("m/<int:message_id>/part/<str:part>/", message.attachment, name="attachment"),
    path("inline/<str:token>/", message.inline_image, name="inline_image"),
    path("compose/", compose.compose, name="compose"),
    path("compose/draft/", compose.draft_save, name="draft_save"),
    path("settings/", settings.settings_view, name="settings"),
    path("settings/password/", settings.password_change, name="password_change"),
    path("settings/folders/", settings.folder_create, name="folder_create"),
    path("settings/folders/<int:folder_id>/rename/", settings.folder_rename, name="folder_rename"),
    path("settings/folders/<int:folder_id>/delete/", settings.folder_delete, name="folder_delete"),
]
