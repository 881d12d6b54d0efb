"""Virtual devices: a software PIV card, attachable in process or through vpcd."""

from station.devices.virtual.card import VirtualPivCard
from station.devices.virtual.connection import VirtualConnection
from station.devices.virtual.image import blank_token, load_card_image, read_card_image
from station.devices.virtual.token import VirtualPivToken

__all__ = ["VirtualPivCard", "VirtualPivToken", "VirtualConnection", "blank_token", "load_card_image", "read_card_image"]
