"""A small catalogue for the demo jobs and the CRUD pages, and a large table (``BigBook``)."""

from __future__ import annotations

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    tags = models.ManyToManyField(Tag, blank=True, related_name="books")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class BigBook(models.Model):
    """A large table (``manage.py seed_demo --bigbook 100000``) for the list's performance.

    The indexes serve the list's filter and sort: a status filter with the default
    order (newest first) or a price sort, and sorting the whole table by title,
    price or date.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        OUT_OF_PRINT = "out_of_print", "Out of print"

    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="big_books")
    price = models.DecimalField(max_digits=8, decimal_places=2)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    published = models.DateField()

    class Meta:
        ordering = ["-published", "-id"]
        indexes = [
            models.Index(fields=["status", "-published"], name="library_bigbook_status_pub"),
            models.Index(fields=["status", "price"], name="library_bigbook_status_price"),
            models.Index(fields=["title"], name="library_bigbook_title"),
            models.Index(fields=["price"], name="library_bigbook_price"),
            models.Index(fields=["published"], name="library_bigbook_published"),
        ]

    def __str__(self) -> str:
        return self.title
