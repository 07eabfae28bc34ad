"""A consumer of the service's outbound events that is not ours: Debian's python3-redis and
python3-avro, reading the streams through a consumer group as edx-event-bus-redis's
`consume_events` does, and decoding every `event_data` with the Avro schemas of openedx-events as
docs/openedx-event-bus.md gives them (written here from that reference, not from the service).

usage: lms_consumer.py REDIS_URL GROUP COUNT TIMEOUT_S STREAM...
Creates GROUP on each STREAM (from the start, MKSTREAM) when missing, reads with XREADGROUP until
COUNT entries in all or TIMEOUT_S seconds, acknowledges them, and prints one JSON document:
{"entries": [{stream, entry_id, type, id, source, time, minorversion, sourcehost, sourcelib, data}]}.
Any entry the stock consumer could not read makes it exit 1 with the reason.
"""
import io
import json
import sys
import time
import uuid
from datetime import datetime

import avro.io
import avro.schema
import redis

USER_DATA = {
    "type": "record", "name": "UserData", "namespace": "org.openedx.learning",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "is_active", "type": "boolean"},
        {"name": "pii", "type": {
            "type": "record", "name": "UserPersonalData", "namespace": "org.openedx.learning",
            "fields": [
                {"name": "username", "type": "string"},
                {"name": "email", "type": "string"},
                {"name": "name", "type": "string"},
            ]}},
    ],
}

ENROLLMENT = {
    "type": "record", "name": "CloudEvent", "namespace": "org.openedx.learning.course.enrollment.created.v1",
    "fields": [{"name": "enrollment", "type": {
        "type": "record", "name": "CourseEnrollmentData", "namespace": "org.openedx.learning",
        "fields": [
            {"name": "user", "type": USER_DATA},
            {"name": "course", "type": {
                "type": "record", "name": "CourseData", "namespace": "org.openedx.learning",
                "fields": [
                    {"name": "course_key", "type": "string"},
                    {"name": "display_name", "type": "string"},
                    {"name": "start", "type": ["null", "string"], "default": None},
                    {"name": "end", "type": ["null", "string"], "default": None},
                ]}},
            {"name": "mode", "type": "string"},
            {"name": "is_active", "type": "boolean"},
            {"name": "creation_date", "type": "string"},
            {"name": "created_by", "type": ["null", "org.openedx.learning.UserData"], "default": None},
        ]}}],
}

ROLE = {
    "type": "record", "name": "CloudEvent", "namespace": "org.openedx.learning.user.course_access_role.added.v1",
    "fields": [{"name": "course_access_role_data", "type": {
        "type": "record", "name": "CourseAccessRoleData", "namespace": "org.openedx.learning",
        "fields": [
            {"name": "user", "type": USER_DATA},
            {"name": "org_key", "type": "string"},
            {"name": "course_key", "type": "string"},
            {"name": "role", "type": "string"},
        ]}}],
}

SCHEMAS = {
    "org.openedx.learning.course.enrollment.created.v1": ENROLLMENT,
    "org.openedx.learning.course.enrollment.changed.v1": ENROLLMENT,
    "org.openedx.learning.user.course_access_role.added.v1": ROLE,
    "org.openedx.learning.user.course_access_role.removed.v1": ROLE,
}
READERS = {t: avro.io.DatumReader(avro.schema.parse(json.dumps(s))) for t, s in SCHEMAS.items()}


def fail(reason):
    print(reason, file=sys.stderr)
    sys.exit(1)


def decode(entry_id, fields):
    text = {}
    for name in (b"type", b"id", b"source", b"time", b"minorversion", b"sourcehost", b"sourcelib"):
        if name not in fields:
            fail(f"{entry_id}: no {name.decode()} field")
        text[name.decode()] = fields[name].decode("utf-8")
    if b"event_data" not in fields:
        fail(f"{entry_id}: no event_data field")
    reader = READERS.get(text["type"])
    if reader is None:
        fail(f"{entry_id}: unknown event type {text['type']}")
    # The header checks of the stock consumer's message parsing.
    uuid.UUID(text["id"])
    when = datetime.fromisoformat(text["time"])
    if when.utcoffset() is None or when.utcoffset().total_seconds() != 0:
        fail(f"{entry_id}: time {text['time']} is not an aware UTC time")
    int(text["minorversion"])
    [int(part) for part in text["sourcelib"].split(".")]
    data = fields[b"event_data"]
    buffer = io.BytesIO(data)
    record = reader.read(avro.io.BinaryDecoder(buffer))
    if buffer.tell() != len(data):
        fail(f"{entry_id}: {len(data) - buffer.tell()} bytes of event_data left after decoding")
    return {**text, "data": record}


def main():
    url, group, count, timeout_s, *streams = sys.argv[1:]
    count, deadline = int(count), time.monotonic() + float(timeout_s)
    client = redis.Redis.from_url(url)
    for stream in streams:
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise
    entries = []
    while len(entries) < count and time.monotonic() < deadline:
        answer = client.xreadgroup(group, "lms-1", {s: ">" for s in streams}, count=500, block=200)
        for stream, messages in answer or []:
            for entry_id, fields in messages:
                entries.append({"stream": stream.decode(), "entry_id": entry_id.decode(), **decode(entry_id, fields)})
                client.xack(stream, group, entry_id)
    print(json.dumps({"entries": entries}))


main()
