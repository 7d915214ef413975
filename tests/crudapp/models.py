"""Models for powercrud's tests: integer, string and UUID primary keys; choices, FK, M2M."""

from __future__ import annotations

import uuid

from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A string primary key."""

    slug = models.SlugField(primary_key=True, max_length=50)
    name = models.CharField(max_length=50)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="books")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    published = models.DateField(null=True, blank=True)
    in_print = models.BooleanField(default=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="books")

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Gadget(models.Model):
    """A UUID primary key."""

    class Color(models.TextChoices):
        RED = "red", "Red"
        BLUE = "blue", "Blue"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=10, choices=Color.choices, default=Color.RED)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
