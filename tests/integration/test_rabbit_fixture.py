"""test_rabbit_fixture.py - the throw-away RabbitMQ of rabbit.py works: a
real client we did not write (python3-pika) declares a durable quorum queue,
publishes with publisher confirms, and the message survives a broker restart
on the same ports and data directory. (The dronegate AMQP publisher and
consumer are tested in test_queue_amqp.py.)"""
import pytest

import rabbit

# the RabbitMQ test fixture (no gateway): deselected in the ASan pass (pytest.ini)
pytestmark = [pytest.mark.skipif(not rabbit.available(), reason="rabbitmq-server not installed"),
              pytest.mark.plain_only]
pika = pytest.importorskip("pika")


rb = pytest.fixture(scope="module", name="rb")(rabbit.module_fixture)   # one broker per module


def test_confirmed_persistent_message_survives_restart(rb):
    c = pika.BlockingConnection(rb.pika_params())
    ch = c.channel()
    ch.queue_declare("fixture.q", durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    ch.basic_publish("", "fixture.q", b'{"drone_id":"d1"}',
                     pika.BasicProperties(delivery_mode=2, content_type="application/json"),
                     mandatory=True)
    c.close()
    assert rb.message_count("fixture.q") == 1
    rb.stop()
    rb.start()
    c = pika.BlockingConnection(rb.pika_params())
    try:
        method, props, body = c.channel().basic_get("fixture.q", auto_ack=True)
        assert body == b'{"drone_id":"d1"}'
        assert props.content_type == "application/json"
    finally:
        c.close()
