from __future__ import annotations

from django.contrib import admin

from .models import Author, Book


@admin.register(Author)
class AuthorAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    list_display = ["title", "author", "price", "status", "created"]
    list_filter = ["status", "author"]
    search_fields = ["title", "author__name"]
    list_select_related = ["author"]
