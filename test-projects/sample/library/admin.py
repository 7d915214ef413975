from __future__ import annotations

from django.contrib import admin

from .models import Author, BigBook, Book, Tag


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


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(BigBook)
class BigBookAdmin(admin.ModelAdmin):
    list_display = ["title", "author", "price", "status", "published"]
    list_filter = ["status"]
    search_fields = ["title"]
    list_select_related = ["author"]
    show_full_result_count = False
