"""Writes tests/mailcore/mime/corpus/*.eml. Run: python tests/mailcore/mime/make_corpus.py

Messages imitate what real clients send; legacy-charset bytes are produced with Python codecs
so the files hold exactly the bytes a sender would have written.
"""

from __future__ import annotations

import base64
import quopri
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3).decode()
PDF = base64.b64encode(b"%PDF-1.4\n" + b"0123456789" * 60 + b"\n%%EOF\n").decode()


def wrap(b64: str) -> str:
    return "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def lf(text: str) -> bytes:
    return text.replace("\r\n", "\n").encode("utf-8")


HDR = (
    "From: Alice Example <alice@example.com>\n"
    "To: Bob Example <bob@example.net>\n"
    "Date: Tue, 12 Mar 2024 09:15:00 +0100\n"
    "MIME-Version: 1.0\n"
)


def msg(subject: str, rest: str, *, hdr: str = HDR, mid: str = "m@example.com") -> str:
    return f"{hdr}Subject: {subject}\nMessage-ID: <{mid}>\n{rest}"


def charset_msg(charset: str, text: str, subject_word: str, encoding: str = "8bit") -> bytes:
    body = text.encode(charset)
    subj = "=?" + charset + "?B?" + base64.b64encode(subject_word.encode(charset)).decode() + "?="
    body_text = wrap(base64.b64encode(body).decode()).encode() if encoding == "base64" else body
    head = crlf(
        msg(
            f"{subj} test",
            f"Content-Type: text/plain; charset={charset}\nContent-Transfer-Encoding: {encoding}\n\n",
        )
    )
    return head + body_text.replace(b"\n", b"\r\n") + b"\r\n"


def build() -> dict[str, bytes]:
    c: dict[str, bytes] = {}
    c["simple_plain"] = crlf(
        msg(
            "Lunch tomorrow?",
            "Content-Type: text/plain; charset=us-ascii\n\nHi Bob,\n\nLunch at noon tomorrow?\n\nAlice\n",
        )
    )
    c["gmail_alternative"] = crlf(
        msg(
            "Quarterly numbers",
            'Content-Type: multipart/alternative; boundary="000000000000a1b2c3"\n\n'
            '--000000000000a1b2c3\nContent-Type: text/plain; charset="UTF-8"\n\nThe numbers are in. Revenue is up 12%.\n\n'
            '--000000000000a1b2c3\nContent-Type: text/html; charset="UTF-8"\n\n'
            '<div dir="ltr">The numbers are in. Revenue is <b>up 12%</b>.</div>\n\n'
            "--000000000000a1b2c3--\n",
        )
    )
    c["gmail_inline_cid"] = crlf(
        msg(
            "Look at this chart",
            'Content-Type: multipart/related; boundary="000000000000rel"\n\n'
            '--000000000000rel\nContent-Type: multipart/alternative; boundary="000000000000alt"\n\n'
            '--000000000000alt\nContent-Type: text/plain; charset="UTF-8"\n\nChart below:\n[image: chart.png]\n\n'
            '--000000000000alt\nContent-Type: text/html; charset="UTF-8"\n\n'
            '<div dir="ltr">Chart below:<br><img src="cid:ii_lt1abc0" alt="chart.png"></div>\n\n'
            "--000000000000alt--\n\n"
            '--000000000000rel\nContent-Type: image/png; name="chart.png"\nContent-Disposition: inline; filename="chart.png"\n'
            "Content-Transfer-Encoding: base64\nContent-ID: <ii_lt1abc0>\nX-Attachment-Id: ii_lt1abc0\n\n"
            + wrap(PNG)
            + "\n"
            "--000000000000rel--\n",
        )
    )
    c["gmail_mixed_attachment"] = crlf(
        msg(
            "Contract draft",
            'Content-Type: multipart/mixed; boundary="000000000000mix"\n\n'
            '--000000000000mix\nContent-Type: multipart/alternative; boundary="000000000000alt"\n\n'
            '--000000000000alt\nContent-Type: text/plain; charset="UTF-8"\n\nDraft attached, please review.\n\n'
            '--000000000000alt\nContent-Type: text/html; charset="UTF-8"\n\n<div>Draft attached, please review.</div>\n\n'
            "--000000000000alt--\n"
            '--000000000000mix\nContent-Type: application/pdf; name="contract-v2.pdf"\n'
            'Content-Disposition: attachment; filename="contract-v2.pdf"\nContent-Transfer-Encoding: base64\n'
            "X-Attachment-Id: f_lt1\nContent-ID: <f_lt1>\n\n" + wrap(PDF) + "\n--000000000000mix--\n",
        )
    )
    outlook_hdr = (
        HDR
        + "Thread-Topic: Budget 2024\nThread-Index: AdpzW1kq1234567890abcdef==\nX-MS-Has-Attach: yes\nX-MS-TNEF-Correlator:\nContent-Language: de-DE\n"
    )
    c["outlook_related"] = crlf(
        msg(
            "AW: Budget 2024",
            'Content-Type: multipart/mixed;\n\tboundary="_004_AM0PR01MB1234_"\n\n'
            '--_004_AM0PR01MB1234_\nContent-Type: multipart/related;\n\tboundary="_003_AM0PR01MB1234_";\n\ttype="multipart/alternative"\n\n'
            '--_003_AM0PR01MB1234_\nContent-Type: multipart/alternative;\n\tboundary="_000_AM0PR01MB1234_"\n\n'
            '--_000_AM0PR01MB1234_\nContent-Type: text/plain; charset="iso-8859-1"\nContent-Transfer-Encoding: quoted-printable\n\n'
            "Gr=FC=DFe, anbei das Budget.\n\n"
            '--_000_AM0PR01MB1234_\nContent-Type: text/html; charset="iso-8859-1"\nContent-Transfer-Encoding: quoted-printable\n\n'
            '<html><head><style>p{margin:0}</style></head><body><p>Gr=FC=DFe, anbei das Budget.</p><img src=3D"cid:image001.png@01DA7000.12345670"></body></html>\n\n'
            "--_000_AM0PR01MB1234_--\n\n"
            '--_003_AM0PR01MB1234_\nContent-Type: image/png; name="image001.png"\nContent-Description: image001.png\n'
            'Content-Disposition: inline; filename="image001.png"; size=800;\n\tcreation-date="Tue, 12 Mar 2024 08:15:00 GMT"\n'
            "Content-ID: <image001.png@01DA7000.12345670>\nContent-Transfer-Encoding: base64\n\n"
            + wrap(PNG)
            + "\n\n"
            "--_003_AM0PR01MB1234_--\n\n"
            '--_004_AM0PR01MB1234_\nContent-Type: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet;\n\tname="Budget 2024.xlsx"\n'
            'Content-Description: Budget 2024.xlsx\nContent-Disposition: attachment;\n\tfilename="Budget 2024.xlsx"; size=600\n'
            "Content-Transfer-Encoding: base64\n\n" + wrap(PDF) + "\n\n--_004_AM0PR01MB1234_--\n",
            hdr=outlook_hdr,
        )
    )
    c["outlook_winmail"] = crlf(
        msg(
            "RE: Meeting notes",
            'Content-Type: multipart/mixed; boundary="_tnef_"\n\n'
            '--_tnef_\nContent-Type: text/plain; charset="us-ascii"\n\nNotes are in the attachment.\n\n'
            '--_tnef_\nContent-Type: application/ms-tnef; name="winmail.dat"\nContent-Disposition: attachment; filename="winmail.dat"\n'
            "Content-Transfer-Encoding: base64\n\n" + wrap(PDF) + "\n\n--_tnef_--\n",
            hdr=HDR + "X-MS-TNEF-Correlator: <00000000ABCDEF@example.com>\n",
        )
    )
    c["apple_mail"] = crlf(
        msg(
            "Photos from the weekend",
            'Content-Type: multipart/mixed;\n\tboundary="Apple-Mail=_0C3F2A1B-1111-2222-3333-444455556666"\n\n'
            "--Apple-Mail=_0C3F2A1B-1111-2222-3333-444455556666\nContent-Transfer-Encoding: 7bit\nContent-Type: text/plain;\n\tcharset=us-ascii\n\nHere you go:\n\n"
            '--Apple-Mail=_0C3F2A1B-1111-2222-3333-444455556666\nContent-Disposition: inline;\n\tfilename=IMG_0042.jpg\nContent-Type: image/jpeg;\n\tx-unix-mode=0644;\n\tname="IMG_0042.jpg"\nContent-Transfer-Encoding: base64\n\n'
            + wrap(PNG)
            + "\n"
            "--Apple-Mail=_0C3F2A1B-1111-2222-3333-444455556666\nContent-Transfer-Encoding: 7bit\nContent-Type: text/plain;\n\tcharset=us-ascii\n\n\nCheers\n\n"
            "--Apple-Mail=_0C3F2A1B-1111-2222-3333-444455556666--\n",
            hdr=HDR + "X-Mailer: Apple Mail (2.3774.400.31)\n",
        )
    )
    c["apple_html_related"] = crlf(
        msg(
            "Signature test",
            'Content-Type: multipart/alternative; boundary="Apple-Mail=_A"\n\n'
            "--Apple-Mail=_A\nContent-Transfer-Encoding: quoted-printable\nContent-Type: text/plain; charset=utf-8\n\nBest regards =E2=80=94 Alice\n\n"
            '--Apple-Mail=_A\nContent-Type: multipart/related; type="text/html"; boundary="Apple-Mail=_B"\n\n'
            "--Apple-Mail=_B\nContent-Transfer-Encoding: quoted-printable\nContent-Type: text/html; charset=utf-8\n\n"
            '<html><body>Best regards =E2=80=94 Alice<br><img src=3D"cid:logo@apple"></body></html>\n'
            '--Apple-Mail=_B\nContent-Transfer-Encoding: base64\nContent-Disposition: inline; filename=logo.png\nContent-Type: image/png; name="logo.png"\nContent-Id: <logo@apple>\n\n'
            + wrap(PNG)
            + "\n"
            "--Apple-Mail=_B--\n\n--Apple-Mail=_A--\n",
        )
    )
    c["thunderbird_attachment"] = crlf(
        msg(
            "Script for the cron job",
            'Content-Type: multipart/mixed; boundary="------------8xg1QdPp0f1CG5XuN7Sm3zTp"\n\n'
            "This is a multi-part message in MIME format.\n"
            "--------------8xg1QdPp0f1CG5XuN7Sm3zTp\nContent-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 7bit\n\n"
            "Here is the script we talked about. \nIt runs nightly.\n\n"
            '--------------8xg1QdPp0f1CG5XuN7Sm3zTp\nContent-Type: text/x-python; charset=UTF-8; name="backup.py"\n'
            'Content-Disposition: attachment; filename="backup.py"\nContent-Transfer-Encoding: base64\n\n'
            + wrap(base64.b64encode(b"import shutil\nshutil.copy('a', 'b')\n").decode())
            + "\n\n--------------8xg1QdPp0f1CG5XuN7Sm3zTp--\n",
            hdr=HDR + "User-Agent: Mozilla Thunderbird\n",
        )
    )
    ics = "BEGIN:VCALENDAR\nMETHOD:REQUEST\nPRODID:Microsoft Exchange Server 2010\nVERSION:2.0\nBEGIN:VEVENT\nSUMMARY:Planning\nDTSTART:20240315T090000Z\nEND:VEVENT\nEND:VCALENDAR\n"
    c["calendar_invite"] = crlf(
        msg(
            "Invitation: Planning @ Fri Mar 15, 2024",
            'Content-Type: multipart/mixed; boundary="000000000000cal"\n\n'
            '--000000000000cal\nContent-Type: multipart/alternative; boundary="000000000000calalt"\n\n'
            '--000000000000calalt\nContent-Type: text/plain; charset="UTF-8"\n\nYou have been invited to Planning.\n\n'
            '--000000000000calalt\nContent-Type: text/html; charset="UTF-8"\n\n<p>You have been invited to <b>Planning</b>.</p>\n\n'
            '--000000000000calalt\nContent-Type: text/calendar; charset="UTF-8"; method=REQUEST\n\n'
            + ics
            + "\n"
            "--000000000000calalt--\n\n"
            '--000000000000cal\nContent-Type: application/ics; name="invite.ics"\nContent-Disposition: attachment; filename="invite.ics"\n'
            "Content-Transfer-Encoding: base64\n\n"
            + wrap(base64.b64encode(ics.encode()).decode())
            + "\n\n--000000000000cal--\n",
        )
    )
    inner = msg(
        "Original report",
        'Content-Type: multipart/mixed; boundary="inner-b"\n\n'
        "--inner-b\nContent-Type: text/plain; charset=utf-8\n\nThe original text.\n"
        '--inner-b\nContent-Type: application/pdf; name="report.pdf"\nContent-Disposition: attachment; filename="report.pdf"\n'
        "Content-Transfer-Encoding: base64\n\n" + wrap(PDF) + "\n--inner-b--\n",
        hdr="From: Carol <carol@example.org>\nTo: Alice Example <alice@example.com>\nDate: Mon, 11 Mar 2024 17:00:00 -0500\nMIME-Version: 1.0\n",
        mid="orig@example.org",
    )
    c["forwarded_rfc822"] = crlf(
        msg(
            "Fwd: Original report",
            'Content-Type: multipart/mixed; boundary="outer-b"\n\n'
            "--outer-b\nContent-Type: text/plain; charset=utf-8\n\nSee the forwarded message.\n\n"
            '--outer-b\nContent-Type: message/rfc822; name="Original report.eml"\nContent-Disposition: attachment; filename="Original report.eml"\n\n'
            + inner
            + "\n--outer-b--\n",
        )
    )
    c["forwarded_rfc822_noname"] = crlf(
        msg(
            "Fw: Original report",
            'Content-Type: multipart/mixed; boundary="outer-c"\n\n'
            "--outer-c\nContent-Type: text/plain; charset=utf-8\n\nForwarding inline.\n\n"
            "--outer-c\nContent-Type: message/rfc822\n\n" + inner + "\n--outer-c--\n",
        )
    )
    c["dsn_report"] = crlf(
        msg(
            "Undelivered Mail Returned to Sender",
            'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="4F1A2B3C.1710230000/mx.example.com"\n\n'
            "This is a MIME-encapsulated message.\n\n"
            "--4F1A2B3C.1710230000/mx.example.com\nContent-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
            "This is the mail system at host mx.example.com.\n\nI'm sorry to have to inform you that your message could not be delivered.\n\n"
            "--4F1A2B3C.1710230000/mx.example.com\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
            "Reporting-MTA: dns; mx.example.com\n\nFinal-Recipient: rfc822; nobody@example.net\nAction: failed\nStatus: 5.1.1\n\n"
            "--4F1A2B3C.1710230000/mx.example.com\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\n"
            "From: Alice Example <alice@example.com>\nTo: nobody@example.net\nSubject: Hello nobody\nMessage-ID: <hn@example.com>\n\nAre you there?\n\n"
            "--4F1A2B3C.1710230000/mx.example.com--\n",
            hdr="From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\nTo: alice@example.com\nDate: Tue, 12 Mar 2024 09:20:00 +0100 (CET)\nMIME-Version: 1.0\n",
        )
    )
    c["pgp_signed"] = crlf(
        msg(
            "Signed release announcement",
            'Content-Type: multipart/signed; micalg=pgp-sha256;\n protocol="application/pgp-signature";\n boundary="pgpsig"\n\n'
            "This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\n"
            "--pgpsig\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nVersion 2.0 is out.=0A=\nEnjoy.\n\n"
            '--pgpsig\nContent-Type: application/pgp-signature; name="signature.asc"\nContent-Description: OpenPGP digital signature\n'
            'Content-Disposition: attachment; filename="signature.asc"\n\n-----BEGIN PGP SIGNATURE-----\n\niQEzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n\n'
            "--pgpsig--\n",
        )
    )
    c["pgp_encrypted"] = crlf(
        msg(
            "...",
            'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary="pgpenc"\n\n'
            "--pgpenc\nContent-Type: application/pgp-encrypted\nContent-Description: PGP/MIME version identification\n\nVersion: 1\n\n"
            '--pgpenc\nContent-Type: application/octet-stream; name="encrypted.asc"\nContent-Description: OpenPGP encrypted message\n'
            'Content-Disposition: inline; filename="encrypted.asc"\n\n-----BEGIN PGP MESSAGE-----\n\nhQEMA1234\n-----END PGP MESSAGE-----\n\n--pgpenc--\n',
        )
    )
    c["smime_signed"] = crlf(
        msg(
            "S/MIME signed newsletter",
            'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="----smime"\n\n'
            "This is an S/MIME signed message\n\n"
            '------smime\nContent-Type: multipart/alternative; boundary="----alt"\n\n'
            "------alt\nContent-Type: text/plain; charset=utf-8\n\nNewsletter body.\n"
            "------alt\nContent-Type: text/html; charset=utf-8\n\n<p>Newsletter <i>body</i>.</p>\n"
            "------alt--\n\n"
            '------smime\nContent-Type: application/pkcs7-signature; name="smime.p7s"\nContent-Transfer-Encoding: base64\n'
            'Content-Disposition: attachment; filename="smime.p7s"\n\n' + wrap(PDF) + "\n\n------smime--\n",
        )
    )
    c["smime_enveloped"] = crlf(
        msg(
            "Encrypted",
            'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\n'
            'Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="smime.p7m"\n\n'
            + wrap(PDF)
            + "\n",
        )
    )
    digest_items = "".join(
        f"--digest-b\n\nFrom: member{i}@lists.example.org\nSubject: Topic {i}\nDate: Mon, 11 Mar 2024 1{i}:00:00 +0000\n\nDigest item {i} text.\n\n"
        for i in range(1, 4)
    )
    c["mailing_list_digest"] = crlf(
        msg(
            "dev Digest, Vol 42, Issue 7",
            'Content-Type: multipart/mixed; boundary="digest-outer"\n\n'
            "--digest-outer\nContent-Type: text/plain; charset=us-ascii\nContent-Description: dev Digest, Vol 42, Issue 7\n\nToday's Topics:\n\n  1. Topic 1\n\n"
            '--digest-outer\nContent-Type: multipart/digest; boundary="digest-b"\n\n'
            + digest_items
            + "--digest-b--\n\n"
            "--digest-outer--\n",
            hdr=HDR + "List-Id: Developers <dev.lists.example.org>\nPrecedence: list\n",
        )
    )
    c["broken_missing_close"] = crlf(
        msg(
            "Missing close delimiter",
            'Content-Type: multipart/mixed; boundary="zzz"\n\n'
            "--zzz\nContent-Type: text/plain\n\nFirst part.\n"
            '--zzz\nContent-Type: application/octet-stream; name="data.bin"\nContent-Transfer-Encoding: base64\n\nAAECAwQF\n',
        )
    )
    c["boundary_never_appears"] = crlf(
        msg(
            "Boundary never appears",
            'Content-Type: multipart/mixed; boundary="not-here"\n\nJust some text where parts were promised.\n',
        )
    )
    c["multipart_without_boundary"] = crlf(
        msg(
            "No boundary parameter",
            "Content-Type: multipart/alternative\n\nPlain words only.\n",
        )
    )
    c["bad_base64"] = crlf(
        msg(
            "Bad base64",
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\nSGVsbG8gd29y!!bGQ*\nbm90IHBhZGRlZA\n",
        )
    )
    c["invalid_qp"] = crlf(
        msg(
            "Invalid quoted-printable",
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nPrice =ZZ 100=\nEUR =E2=82=AC and a lone = sign=3\n",
        )
    )
    c["header_8bit_latin1"] = (
        crlf(
            msg(
                "X", "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: 8bit\n\nBody\n"
            )
        )
        .replace(b"Subject: X", "Subject: Grüße aus Köln".encode("latin-1"))
        .replace(b"From: Alice Example", "From: Jürgen Müller".encode("latin-1"))
    )
    c["header_8bit_utf8"] = crlf(
        msg(
            "Привет, мир",
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nТело письма.\n",
            hdr="From: Дмитрий <dmitry@пример.рф>\nTo: bob@example.net\nDate: Tue, 12 Mar 2024 09:15:00 +0300\nMIME-Version: 1.0\n",
        )
    )
    c["missing_headers"] = crlf("Content-Type: text/plain\n\nNo from, no date, no subject.\n")
    c["header_only"] = crlf(msg("Nothing below", "Content-Type: text/plain\n\n"))
    c["no_blank_line"] = crlf(msg("Only headers", "X-Note: no separator follows\n"))
    c["no_blank_line_body_glued"] = crlf(
        "From: alice@example.com\nSubject: Glued body\nThis line is body text without a separator.\nAnother.\n"
    )
    c["bare_lf_multipart"] = lf(
        msg(
            "Bare LF multipart",
            'Content-Type: multipart/alternative; boundary="lfb"\n\n'
            "--lfb\nContent-Type: text/plain; charset=utf-8\n\nUnix line endings.\nSecond line.\n"
            "--lfb\nContent-Type: text/html; charset=utf-8\n\n<p>Unix line endings.</p>\n"
            "--lfb--\n",
        )
    )
    c["mixed_crlf_lf"] = (
        crlf(msg("Mixed line endings", 'Content-Type: multipart/mixed; boundary="mx"\n\n'))
        + b"--mx\nContent-Type: text/plain\n\nLF part.\n--mx\r\nContent-Type: text/plain\r\n\r\nCRLF part.\r\n--mx--\n"
    )
    c["rfc2231_continuation"] = crlf(
        msg(
            "RFC 2231 filename",
            'Content-Type: multipart/mixed; boundary="r2231"\n\n'
            "--r2231\nContent-Type: text/plain\n\nSee attachment.\n"
            "--r2231\nContent-Type: application/pdf;\n name*0*=utf-8''Rechnung%20M%C3%A4rz;\n name*1*=%202024.pdf\n"
            "Content-Disposition: attachment;\n filename*0*=utf-8''Rechnung%20M%C3%A4rz;\n filename*1*=%202024.pdf\n"
            "Content-Transfer-Encoding: base64\n\n" + wrap(PDF) + "\n--r2231--\n",
        )
    )
    c["rfc2047_filename"] = crlf(
        msg(
            "=?utf-8?Q?Fichier_joint_=C3=A9t=C3=A9?=",
            'Content-Type: multipart/mixed; boundary="r2047"\n\n'
            "--r2047\nContent-Type: text/plain; charset=utf-8\n\nVoir la pièce jointe.\n"
            '--r2047\nContent-Type: image/jpeg; name="=?utf-8?B?w6l0w6kgMjAyNC5qcGc=?="\n'
            'Content-Disposition: attachment; filename="=?utf-8?B?w6l0w6kgMjAyNC5qcGc=?="\nContent-Transfer-Encoding: base64\n\n'
            + wrap(PNG)
            + "\n--r2047--\n",
        )
    )
    c["charset_iso8859_1"] = charset_msg("iso-8859-1", "Café crème à Noël.\n", "Crème")
    c["charset_windows_1252"] = charset_msg(
        "windows-1252", "\u201cQuoted\u201d \u2013 50\u20ac.\n", "Euro\u20ac"
    )
    c["charset_shift_jis"] = charset_msg("shift_jis", "こんにちは、世界。\n", "件名", "base64")
    c["charset_koi8_r"] = charset_msg("koi8-r", "Съешь же ещё этих мягких булок.\n", "Тема")
    c["charset_gb2312"] = charset_msg("gb2312", "你好，世界。\n", "主题", "base64")
    c["charset_iso2022_jp"] = charset_msg("iso-2022-jp", "日本語のメールです。\n", "日本語", "7bit")
    c["charset_big5"] = charset_msg("big5", "繁體中文測試。\n", "測試", "base64")
    c["charset_utf7"] = charset_msg("utf-7", "Ünïcödé über UTF-7.\n", "Grüß")
    c["charset_unknown"] = crlf(
        msg(
            "Unknown charset",
            "Content-Type: text/plain; charset=x-no-such-charset\n\nPlain ascii survives.\n",
        )
    )
    c["charset_mislabelled_utf8"] = crlf(
        msg(
            "Mislabelled",
            "Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\nnaïve façade\n",
        )
    )
    c["html_only"] = crlf(
        msg(
            "Your weekly newsletter",
            "Content-Type: text/html; charset=utf-8\n\n<html><head><title>News</title><style>.x{color:red}</style>"
            "<script>var secret = 1;</script></head><body><!-- tracking --><h1>Weekly&nbsp;news</h1><p>Item one &amp; item two.</p></body></html>\n",
        )
    )
    c["nested_prefix_boundaries"] = crlf(
        msg(
            "Prefix-sharing boundaries",
            'Content-Type: multipart/mixed; boundary="abc"\n\n'
            '--abc\nContent-Type: multipart/alternative; boundary="abcdef"\n\n'
            "--abcdef\nContent-Type: text/plain\n\nInner plain.\n--abcdef\nContent-Type: text/html\n\n<p>Inner html.</p>\n--abcdef--\n"
            '--abc\nContent-Type: text/csv; name="t.csv"\nContent-Disposition: attachment; filename="t.csv"\n\na,b\n1,2\n--abc--\n',
        )
    )
    c["transport_padding_epilogue"] = crlf(
        msg(
            "Padding and epilogue",
            'Content-Type: multipart/mixed; boundary="pad"\n\n'
            "Preamble text that must be ignored.\n--pad   \nContent-Type: text/plain\n\nPadded delimiter part.\n"
            "--pad\t\nContent-Type: text/plain\n\nSecond.\n--pad--  \nEpilogue text that must be ignored.\n",
        )
    )
    c["mailing_list_reply"] = crlf(
        msg(
            "Re: [python-dev] AW: Fwd: RE[2]: PEP 999 discussion",
            "Content-Type: text/plain; charset=utf-8\n\n> earlier text\n\nI agree with the proposal.\n",
            hdr=HDR + "List-Id: <python-dev.python.org>\nIn-Reply-To: <prev@python.org>\n"
            "References: <root@python.org>\n <mid1@python.org> <prev@python.org>\nReply-To: python-dev@python.org\n",
        )
    )
    c["nul_bytes"] = crlf(msg("Nul\x00 bytes", "Content-Type: text/plain\n\nBefore\x00after.\n"))
    c["split_multibyte_words"] = crlf(
        msg(
            "=?utf-8?B?5pel5pys?= =?utf-8?B?6Kqe44Gu?=\n =?utf-8?Q?=E3=83=A1=E3?= =?utf-8?Q?=83=BC=E3=83=AB?=",
            "Content-Type: text/plain\n\nbody\n",
        )
    )
    c["group_addresses"] = crlf(
        msg(
            "Group syntax",
            "Content-Type: text/plain\n\nTo a group.\n",
            hdr="From: Alice Example <alice@example.com>\nSender: Secretary <secretary@example.com>\n"
            'To: Project Team: bob@example.net, "Carol (QA)" <carol@example.org>;, undisclosed-recipients:;\n'
            "Cc: dave@example.com (Dave Davis)\nDate: Tue, 12 Mar 2024 09:15:00 +0100\n",
        )
    )
    c["idn_addresses"] = crlf(
        msg(
            "IDN",
            "Content-Type: text/plain\n\nIDN domains.\n",
            hdr="From: =?iso-8859-1?Q?J=F6rg?= <joerg@xn--bcher-kva.example>\nTo: bob@bücher.example\nDate: Tue, 12 Mar 2024 09:15:00 +0100\n",
        )
    )
    c["related_start_param"] = crlf(
        msg(
            "Related with start",
            'Content-Type: multipart/related; boundary="rs"; type="text/html"; start="<root@x>"\n\n'
            "--rs\nContent-Type: image/gif\nContent-ID: <pic@x>\nContent-Transfer-Encoding: base64\n\nR0lGODlhAQABAAAAACw=\n"
            '--rs\nContent-Type: text/html; charset=utf-8\nContent-ID: <root@x>\n\n<p>Root document <img src="cid:pic@x"></p>\n--rs--\n',
        )
    )
    c["part_without_headers"] = crlf(
        msg(
            "Part without headers",
            'Content-Type: multipart/mixed; boundary="nh"\n\n--nh\n\nDefault typed part.\n--nh--\n',
        )
    )
    c["qp_html_utf8"] = crlf(
        msg(
            "=?UTF-8?Q?Bestellung_best=C3=A4tigt?=",
            "Content-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n"
            "<p>Ihre Bestellung wurde best=C3=A4tigt. Vielen Dank f=C3=BCr Ihren Einkauf bei uns, wir=\n freuen uns.</p>\n",
        )
    )
    deep = ""
    for i in range(100):
        deep += f'--d{i}\nContent-Type: multipart/mixed; boundary="d{i + 1}"\n\n'
    deep += "--d100\nContent-Type: text/plain\n\nBottom.\n--d100--\n"
    for i in range(99, -1, -1):
        deep += f"--d{i}--\n"
    c["deeply_nested"] = crlf(msg("Deep", 'Content-Type: multipart/mixed; boundary="d0"\n\n' + deep))
    c["empty"] = b""
    c["encoded_rfc822"] = crlf(
        msg(
            "Base64 encoded rfc822",
            'Content-Type: multipart/mixed; boundary="e8"\n\n--e8\nContent-Type: text/plain\n\nInside.\n'
            "--e8\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
            + base64.b64encode(b"Subject: hidden\r\n\r\nhi\r\n").decode()
            + "\n--e8--\n",
        )
    )
    c["qp_soft_breaks_long"] = crlf(
        msg(
            "Long QP",
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
            + quopri.encodestring(("Lorem ipsum dolor sit amet " * 20).encode()).decode()
            + "\n",
        )
    )
    return c


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, data in build().items():
        (CORPUS / f"{name}.eml").write_bytes(data)


if __name__ == "__main__":
    main()
