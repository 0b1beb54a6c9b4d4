"""Regenerate vocabulary.txt, the everyday concepts that album labels are chosen from.

Run at authoring time only (the product reads the plain-text file it writes, never these sources):

    apt-get install wordnet-base
    python -m tools.build_vocabulary ../shared/data/photos/imagenet-sample /usr/share/wordnet \
        > shared/organise/vocabulary.txt

Three sources: the 1000 ImageNet class names (file names ``<wnid>_<class name>.JPEG``), the scenes,
people and events written out below (Places-style categories), and the commonest concrete WordNet
nouns (animals, things, food, plants, natural objects) ranked by their SemCor tag counts.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Places-style scene categories, "|" separated (entries may span lines).
SCENE_NAMES = """
airfield|airport terminal|alley|amphitheater|amusement park|apartment building|aquarium|aqueduct|arcade|
archaeological site|archive|army base|art gallery|art studio|assembly line|attic|auditorium|auto showroom|
badlands|bakery|balcony|ballroom|bamboo forest|bank vault|banquet hall|bar|barn|baseball field|basement|
basketball court|bathroom|bazaar|beach|beach house|beauty salon|bedroom|beer garden|beer hall|
biology laboratory|boardwalk|boat deck|boathouse|bookstore|botanical garden|bowling alley|boxing ring|bridge|
building facade|bullring|burial chamber|bus interior|bus station|butcher shop|butte|cabin|cafeteria|campsite|
campus|canal|canyon|car interior|carousel|castle|catacomb|cemetery|chalet|chemistry lab|child's room|church|
classroom|clean room|cliff|closet|clothing store|coast|cockpit|coffee shop|computer room|conference center|
conference room|construction site|corn field|corral|corridor|cottage|courthouse|courtyard|creek|crevasse|
crosswalk|dam|delicatessen|department store|desert road|desert|sand dunes|diner|dining hall|dining room|
nightclub|doorway|dorm room|downtown|dressing room|driveway|drugstore|elevator lobby|embassy|engine room|
entrance hall|escalator|excavation|fabric store|farm|fast food restaurant|field road|fire escape|
fire station|fishpond|flea market|florist shop|food court|football field|forest|forest path|forest road|
formal garden|fountain|galley|garage|gas station|gazebo|general store|gift shop|glacier|golf course|
greenhouse|grotto|gymnasium|hangar|harbor|hardware store|hayfield|heliport|highway|home office|home theater|
hospital|hospital room|hot spring|hotel|hotel room|house|hunting lodge|ice cream parlor|ice floe|ice shelf|
ice skating rink|iceberg|igloo|industrial area|inn|islet|hot tub|jail cell|japanese garden|jewelry shop|
junkyard|kasbah|kennel|kindergarten classroom|kitchen|lagoon|lake|landfill|laundromat|lawn|lecture room|
library|lighthouse|living room|loading dock|lobby|mansion|market|marsh|martial arts gym|mausoleum|medina|
mezzanine|moat|mosque|motel|mountain|mountain path|snowy mountain|movie theater|museum|music studio|
natural history museum|nursery|nursing home|ocean|office|office building|office cubicles|oil rig|
operating room|orchard|orchestra pit|pagoda|palace|pantry|park|parking garage|parking lot|pasture|patio|
pavilion|pet shop|pharmacy|phone booth|physics laboratory|picnic area|pier|pizzeria|playground|playroom|
plaza|pond|porch|promenade|pub|racecourse|race track|raft|railroad track|rainforest|reception|
recreation room|repair shop|residential neighborhood|restaurant|restaurant kitchen|restaurant patio|
rice paddy|river|rock arch|roof garden|rope bridge|ruins|runway|sandbox|sauna|schoolhouse|science museum|
server room|shed|shoe shop|shopfront|shopping mall|shower|ski resort|ski slope|sky|skyscraper|slum|
snowfield|soccer field|stable|stadium|stage|staircase|storage room|street|subway station|supermarket|
sushi bar|swamp|swimming hole|swimming pool|synagogue|television room|television studio|temple|throne room|
ticket booth|topiary garden|tower|toy shop|train interior|train station|tree farm|tree house|trench|tundra|
underwater|valley|vegetable garden|veterinarian's office|viaduct|village|vineyard|volcano|volleyball court|
waiting room|water park|water tower|waterfall|watering hole|ocean waves|wet bar|wheat field|wind farm|
windmill|backyard|youth hostel|zen garden|city street at night|city skyline|countryside|snowy landscape|
sunset|sunrise|night sky|starry sky|fireworks|rainbow|fog|thunderstorm|autumn leaves|spring flowers|
sandy beach|rocky shore|seaside|harbour boats|island|palm trees|hills|meadow|flower field|sea|lake shore|
"""

PEOPLE_AND_EVENTS = """
people|a person|a man|a woman|a child|children|a baby|a toddler|a boy|a girl|a teenager|an old man|
an old woman|a couple|a family|friends|a group of people|a crowd|a selfie|a portrait|a face|a smiling face|
a wedding|a bride|a groom|a birthday party|a birthday cake|a party|a concert|a festival|a parade|
a graduation|a dinner party|a picnic|a barbecue|a holiday|christmas|a christmas tree|halloween|
a hike|a road trip|a camping trip|a day at the beach|a vacation|a ski trip|a football match|a soccer game|
a basketball game|a tennis match|a swimming race|a marathon|a bicycle ride|a swimming pool party|
a museum visit|a school trip|a classroom lesson|a meeting|a presentation|a conference|a family dinner|
a meal|food on a plate|a drink|a cup of coffee|a glass of wine|a sunset walk|a dog walk|pets|a cat|a dog|
a puppy|a kitten|a horse ride|a zoo|a farm animal|a bird in flight|a screenshot|a document|a receipt|
a whiteboard|handwriting|text|a sign|a map|a chart|a diagram|a drawing|a painting|a sculpture|graffiti|
a car|cars in traffic|a motorcycle|a bicycle|a bus|a train|an airplane|a boat|a ship|
"""

VISUAL_LEXFILES = {"05": "animal", "06": "artifact", "13": "food", "17": "object", "20": "plant"}
WORDNET_NOUNS = 1600
MIN_TAG_COUNT = 2


def split_list(text: str) -> list[str]:
    return [entry.strip() for entry in text.replace("\n", "").split("|") if entry.strip()]


def imagenet_names(folder: Path) -> list[str]:
    """``n02099601_golden_retriever.JPEG`` -> ``golden retriever``."""
    names = []
    for path in sorted(folder.iterdir()):
        match = re.fullmatch(r"n\d{8}_(.+)\.[A-Za-z]+", path.name)
        if match:
            names.append(match.group(1).replace("_", " "))
    return names


def wordnet_nouns(wordnet: Path, limit: int) -> list[str]:
    """The commonest nouns whose first (commonest) sense is a visible thing, not a named instance."""
    tag_counts: dict[str, int] = {}
    for line in (wordnet / "cntlist.rev").read_text().splitlines():
        key, sense_number, count = line.split()
        lemma, _, rest = key.partition("%")
        if rest.startswith("1:") and sense_number == "1":
            tag_counts[lemma] = int(count)
    data = (wordnet / "data.noun").read_bytes()
    candidates = []
    for line in (wordnet / "index.noun").read_text().splitlines():
        if line.startswith(" "):
            continue  # licence header
        fields = line.split()
        lemma = fields[0]
        if not re.fullmatch(r"[a-z]+(_[a-z]+)?", lemma) or tag_counts.get(lemma, 0) < MIN_TAG_COUNT:
            continue
        offset = int(fields[-int(fields[2])])  # synset offsets close the line, commonest sense first
        synset = data[offset:data.index(b"\n", offset)].decode()
        lexfile = synset.split()[1]
        if lexfile in VISUAL_LEXFILES and " @i " not in synset:
            candidates.append((-tag_counts[lemma], lemma.replace("_", " ")))
    return [lemma for _, lemma in sorted(candidates)[:limit]]


def build(imagenet: Path, wordnet: Path) -> list[str]:
    seen: set[str] = set()
    concepts = []
    for concept in (imagenet_names(imagenet) + split_list(SCENE_NAMES) + split_list(PEOPLE_AND_EVENTS)
                    + wordnet_nouns(wordnet, WORDNET_NOUNS)):
        key = concept.lower().removeprefix("a ").removeprefix("an ")
        if key not in seen:
            seen.add(key)
            concepts.append(concept)
    return concepts


def main() -> None:
    imagenet, wordnet = (Path(arg) for arg in sys.argv[1:3])
    print("# Everyday concepts for album labels, one per line (generated by build_vocabulary.py).")
    print("# Sources: ImageNet class names, Places-style scenes, people and events, common WordNet nouns.")
    for concept in build(imagenet, wordnet):
        print(concept)


if __name__ == "__main__":
    main()
