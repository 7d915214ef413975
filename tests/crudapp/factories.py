"""Small factories for powercrud's CRUD tests (the bulk tests' are in ``helpers``)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.contrib.auth.models import Permission, User

from .models import Author, Book, Gadget, Tag


def make_user(username: str = "user", *perms: str, staff: bool = False) -> User:
    """A user with these ``app_label.codename`` permissions (``superuser`` for all).

    No usable password (hashing one is slow): log in with ``client.force_login``.
    """
    if perms == ("superuser",):
        return User.objects.create_superuser(username, password=None)
    user = User.objects.create_user(username, password=None, is_staff=staff)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_author(name: str = "Ursula") -> Author:
    return Author.objects.create(name=name)


def make_book(title: str = "A book", author: Author | None = None, **fields: object) -> Book:
    tags = fields.pop("tags", ())
    book = Book.objects.create(title=title, author=author or make_author(), **fields)
    if tags:
        book.tags.set(tags)
    return book


def make_books(count: int, authors: int = 3, tags: int = 2) -> list[Book]:
    """``count`` books ``Book 000``... spread over authors, statuses and tags."""
    people = [Author.objects.create(name=f"Author {n}") for n in range(authors)]
    labels = [Tag.objects.create(slug=f"tag-{n}", name=f"Tag {n}") for n in range(tags)]
    statuses = [Book.Status.DRAFT, Book.Status.PUBLISHED, Book.Status.ARCHIVED]
    books = Book.objects.bulk_create(
        Book(
            title=f"Book {n:03d}",
            author=people[n % authors],
            status=statuses[n % len(statuses)],
            price=Decimal(n % 40) + Decimal("0.50"),
            published=datetime.date(2020, 1, 1) + datetime.timedelta(days=n),
        )
        for n in range(count)
    )
    through = Book.tags.through
    through.objects.bulk_create(
        through(book_id=book.pk, tag_id=labels[n % tags].pk) for n, book in enumerate(books)
    )
    return books


def make_tag(slug: str = "sci-fi", name: str = "Science fiction") -> Tag:
    return Tag.objects.create(slug=slug, name=name)


def make_gadget(name: str = "Gizmo") -> Gadget:
    return Gadget.objects.create(name=name)
