import asyncio
import os
import re
import signal
import socket
import sys
from email.message import EmailMessage

import aiosmtplib
import httpx
import pytest

from mailsink.settings import MailSinkSettings
from mailsink.sink import MailSink


def _order_email() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Café Shop <shop@example.test>"
    message["To"] = "Zoë <zoe@example.test>"
    message["Subject"] = "Votre commande — expédiée ✓"
    message.set_content("Bonjour Zoë,\nvotre colis arrive.\n", cte="base64")
    message.add_alternative("<p>Bonjour <b>Zoë</b></p>\n", subtype="html", cte="quoted-printable")
    return message


@pytest.mark.asyncio
async def test_message_sent_over_smtp_is_served_over_http(
    sink: MailSink, sink_http: httpx.AsyncClient
) -> None:
    await aiosmtplib.send(
        _order_email(),
        hostname="127.0.0.1",
        port=sink.smtp_port,
        recipients=["zoe@example.test", "audit@example.test"],
        local_hostname="tests.local",
        timeout=5,
    )

    listing = (await sink_http.get("/api/v1/messages")).json()
    assert listing["total"] == 1
    summary = listing["messages"][0]
    assert summary["To"] == [{"Name": "Zoë", "Address": "zoe@example.test"}]
    assert summary["Bcc"] == [{"Name": "", "Address": "audit@example.test"}]
    assert summary["Subject"] == "Votre commande — expédiée ✓"
    assert summary["Snippet"] == "Bonjour Zoë, votre colis arrive."
    message = (await sink_http.get(f"/api/v1/message/{summary['ID']}")).json()
    assert message["Text"] == "Bonjour Zoë,\nvotre colis arrive.\n"
    assert message["HTML"] == "<p>Bonjour <b>Zoë</b></p>\n"
    assert message["From"] == {"Name": "Café Shop", "Address": "shop@example.test"}


@pytest.mark.asyncio
async def test_smtp_auth_is_accepted_with_any_credentials(
    sink: MailSink, sink_http: httpx.AsyncClient
) -> None:
    await aiosmtplib.send(
        _order_email(),
        hostname="127.0.0.1",
        port=sink.smtp_port,
        username="anyone",
        password="anything",
        local_hostname="tests.local",
        timeout=5,
    )

    assert (await sink_http.get("/api/v1/messages")).json()["total"] == 1


@pytest.mark.asyncio
async def test_sink_keeps_at_most_max_messages() -> None:
    settings = MailSinkSettings(smtp_port=0, http_port=0, max_messages=2)
    async with MailSink(settings) as sink:
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=sink.smtp_port, local_hostname="tests.local", timeout=5
        ) as client:
            for number in range(1, 4):
                await client.sendmail(
                    "shop@example.test",
                    ["zoe@example.test"],
                    f"Subject: number {number}\r\n\r\nbody\r\n",
                )

        assert [m.subject for m in sink.mailbox.newest_first()] == ["number 3", "number 2"]


@pytest.mark.asyncio
async def test_stopping_the_sink_releases_both_ports() -> None:
    sink = MailSink(MailSinkSettings(smtp_port=0, http_port=0))
    await sink.start()
    smtp_port, http_port = sink.smtp_port, sink.http_port

    await sink.stop()
    await sink.stop()

    for port in (smtp_port, http_port):
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = sink.smtp_port


@pytest.mark.asyncio
async def test_http_port_in_use_fails_start_and_frees_the_smtp_port() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        sink = MailSink(MailSinkSettings(smtp_port=0, http_port=port))

        with pytest.raises(OSError, match="in use"):
            await sink.start()

        with pytest.raises(RuntimeError, match="not running"):
            _ = sink.smtp_port


@pytest.mark.asyncio
async def test_python_m_mailsink_serves_and_stops_cleanly_on_sigterm() -> None:
    environment = {**os.environ, "MAILSINK_SMTP_PORT": "0", "MAILSINK_HTTP_PORT": "0"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailsink",
        env=environment,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        listening = re.compile(rb"SMTP 127\.0\.0\.1:(\d+), HTTP (http://127\.0\.0\.1:\d+)")
        match = None
        while match is None:
            line = await asyncio.wait_for(process.stderr.readline(), timeout=20)
            assert line, "the sink exited before listening"
            match = listening.search(line)
        smtp_port, http_url = int(match.group(1)), match.group(2).decode()

        await aiosmtplib.send(
            "Subject: ping\r\n\r\nbody\r\n",
            sender="shop@example.test",
            recipients=["zoe@example.test"],
            hostname="127.0.0.1",
            port=smtp_port,
            local_hostname="tests.local",
            timeout=5,
        )
        received = await asyncio.wait_for(process.stderr.readline(), timeout=10)
        async with httpx.AsyncClient(base_url=http_url, timeout=5) as client:
            live = await client.get("/livez")
            subjects = [
                m["Subject"] for m in (await client.get("/api/v1/messages")).json()["messages"]
            ]

        process.send_signal(signal.SIGTERM)
        output = await asyncio.wait_for(process.stderr.read(), timeout=20)
        returncode = await asyncio.wait_for(process.wait(), timeout=20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert b"received message" in received
    assert b"subject 'ping'" in received
    assert live.status_code == 200
    assert subjects == ["ping"]
    assert b"stopping" in output
    assert b"Traceback" not in output
    assert returncode == 0


@pytest.mark.asyncio
async def test_starting_a_running_sink_again_is_refused(sink: MailSink) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        await sink.start()


@pytest.mark.asyncio
async def test_python_m_mailsink_exits_1_when_its_port_is_taken() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        environment = {
            **os.environ,
            "MAILSINK_SMTP_PORT": str(taken.getsockname()[1]),
            "MAILSINK_HTTP_PORT": "0",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailsink", env=environment, stderr=asyncio.subprocess.PIPE
        )
        _, output = await asyncio.wait_for(process.communicate(), timeout=20)

    assert process.returncode == 1
    assert b"cannot listen:" in output
    assert b"Traceback" not in output
