"""A container record: Docker's Config, HostConfig and State, kept as the
JSON shapes the Engine API shows."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def new_state() -> dict[str, Any]:
    return {
        "Status": "created", "Running": False, "Paused": False, "Restarting": False,
        "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
        "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME,
    }


@dataclass
class Container:
    id: str
    name: str  # with the leading "/"
    image_id: str
    created: str
    config: dict[str, Any]
    hostconfig: dict[str, Any]
    state: dict[str, Any] = field(default_factory=new_state)
    restart_count: int = 0

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def row(self) -> tuple:
        return (self.id, self.name, self.image_id, self.created, json.dumps(self.config),
                json.dumps(self.hostconfig), json.dumps(self.state), self.restart_count)

    @classmethod
    def from_row(cls, r: Any) -> "Container":
        return cls(r["id"], r["name"], r["image_id"], r["created"], json.loads(r["config"]),
                   json.loads(r["hostconfig"]), json.loads(r["state"]), r["restart_count"])


# docker's namesgenerator, abridged: adjective_surname
_LEFT = ["admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome",
         "blissful", "bold", "boring", "brave", "busy", "charming", "clever", "cool",
         "compassionate", "competent", "confident", "crazy", "dazzling", "determined",
         "distracted", "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant",
         "eloquent", "epic", "fervent", "festive", "flamboyant", "focused", "friendly",
         "frosty", "gallant", "gifted", "goofy", "gracious", "happy", "hardcore", "heuristic",
         "hopeful", "hungry", "infallible", "inspiring", "jolly", "jovial", "keen", "kind",
         "laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty",
         "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful",
         "pedantic", "pensive", "practical", "priceless", "quirky", "quizzical", "relaxed",
         "reverent", "romantic", "sad", "serene", "sharp", "silly", "sleepy", "stoic",
         "strange", "stupefied", "suspicious", "sweet", "tender", "thirsty", "trusting",
         "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful",
         "xenodochial", "youthful", "zealous", "zen"]
_RIGHT = ["albattani", "allen", "almeida", "archimedes", "ardinghelli", "babbage", "banach",
          "bardeen", "bartik", "bell", "benz", "bhabha", "bohr", "booth", "borg", "bose",
          "brahmagupta", "brown", "carson", "chandrasekhar", "chatelet", "clarke", "curie",
          "darwin", "davinci", "dijkstra", "einstein", "elion", "engelbart", "euclid", "euler",
          "fermat", "fermi", "feynman", "franklin", "galileo", "gauss", "goldberg", "goodall",
          "hamilton", "hawking", "heisenberg", "hodgkin", "hopper", "hypatia", "jackson",
          "jennings", "johnson", "kalam", "kepler", "khorana", "knuth", "kowalevski", "lamarr",
          "lamport", "leakey", "lovelace", "lumiere", "mahavira", "mayer", "mccarthy",
          "mcclintock", "meitner", "mendel", "montalcini", "morse", "newton", "nobel", "noether",
          "pare", "pascal", "pasteur", "payne", "perlman", "pike", "poincare", "ptolemy",
          "raman", "ride", "ritchie", "rosalind", "sammet", "shannon", "shockley", "sinoussi",
          "stonebraker", "swanson", "tesla", "thompson", "torvalds", "turing", "volhard",
          "wilbur", "wiles", "williams", "wing", "wozniak", "wright", "yalow", "yonath"]


def random_name(retry: int = 0) -> str:
    name = f"{random.choice(_LEFT)}_{random.choice(_RIGHT)}"
    if retry:
        name += str(random.randint(0, 9))
    return name
