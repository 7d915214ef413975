"""The models of powercrud's tests, for the CRUD pages and the bulk operations alike.

Integer (``Book``, ``Author``), string (``Tag``: any characters, not only slugs) and UUID
(``Gadget``) primary keys; choices, booleans, decimals, dates, foreign keys and
many-to-many fields, which is every kind of field a bulk edit sets.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A string primary key (any characters, not only slugs)."""

    class Color(models.TextChoices):
        RED = "red", "Red"
        GREEN = "green", "Green"
        BLUE = "blue", "Blue"

    slug = models.CharField(primary_key=True, max_length=60)
    name = models.CharField(max_length=60, blank=True, default="")
    color = models.CharField(max_length=10, choices=Color.choices, default=Color.RED)
    archived = models.BooleanField(default=False)
    owner = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class Book(models.Model):
    """An integer primary key, and every kind of field bulk edit sets.

    Its author is protected: deleting an author who has books answers 409.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        BESTSELLER = "bestseller", "Bestseller"
        ARCHIVED = "archived", "Archived"

    title = models.CharField(max_length=200)
    author = models.ForeignKey(
        Author, null=True, blank=True, on_delete=models.PROTECT, related_name="books"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    price = models.DecimalField(
        max_digits=8, decimal_places=2, default=0, validators=[MinValueValidator(0)]
    )
    published = models.DateField(null=True, blank=True)
    in_print = models.BooleanField(default=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="books")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title

    def clean(self) -> None:
        if self.status == self.Status.BESTSELLER and not self.in_print:
            raise ValidationError({"status": "A book out of print cannot be a bestseller."})


class Loan(models.Model):
    """Protects its book: a bulk delete of a lent book must fail and delete nothing."""

    book = models.ForeignKey(Book, on_delete=models.PROTECT, related_name="loans")
    borrower = models.CharField(max_length=100)

    def __str__(self) -> str:
        return f"loan to {self.borrower}"


class Gadget(models.Model):
    """A UUID primary key."""

    class Color(models.TextChoices):
        RED = "red", "Red"
        BLUE = "blue", "Blue"

    class Kind(models.TextChoices):
        TOOL = "tool", "Tool"
        TOY = "toy", "Toy"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    color = models.CharField(max_length=10, choices=Color.choices, default=Color.RED)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TOOL)
    active = models.BooleanField(default=True)
    maker = models.ForeignKey(Author, null=True, blank=True, on_delete=models.SET_NULL)
    tags = models.ManyToManyField(Tag, blank=True, related_name="gadgets")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
