# One image for all four roles (web, mail, worker, beat); docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    VAR_DIR=/var/lib/mailsystem \
    MAIL_BIND=0.0.0.0 \
    HTTP_PORT=8000

WORKDIR /app

# Dependencies first so that code edits do not reinstall them.
COPY pyproject.toml README.md* ./
COPY webmail/__init__.py webmail/__init__.py
COPY mailcore/__init__.py mailcore/__init__.py
RUN pip install . && pip uninstall -y mailsystem

COPY . .
RUN pip install --no-deps . \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin mailsystem \
    && mkdir -p "$VAR_DIR" && chown mailsystem:mailsystem "$VAR_DIR"

USER mailsystem
VOLUME ["/var/lib/mailsystem"]

# web 8000; SMTP 2525, submission 2587, SMTPS 2465; IMAP 2143, IMAPS 2993; POP3 2110, POP3S 2995
EXPOSE 8000 2525 2587 2465 2143 2993 2110 2995

CMD ["sh", "-c", "exec daphne -b 0.0.0.0 -p \"$HTTP_PORT\" webmail.asgi:application"]
