"""Find every face in photos and say mask or no mask.

    python detect_image.py --demo                                  # the astronaut photo shipped with scikit-image
    python detect_image.py --image photo.jpg                       # show (or save) the annotated photo
    python detect_image.py --image photos/ --json > results.jsonl  # a folder, machine-readable
"""

from mask_detection import cli


def parse_args(argv=None):
    parser = cli.ArgumentParser(
        description=(
            "Detect faces (YuNet) in photos and classify each one (mask / no mask) with the trained model. "
            "Draws boxes and labels such as 'Mask 98.7%' (green: mask, red: no mask). "
            "Without --json: one readable line per face."
        ),
        epilog=(
            "JSON Lines (--json), one object per image: "
            '{"image": PATH, "width": W, "height": H, "faces": [{"box": [x, y, w, h], "score": S, '
            '"label": CLASS, "probability": P}]} with the box in pixels of the original image, S the face '
            "detector's confidence and P the classifier's probability for LABEL. "
            "A window is shown when a display is available (not with --json or --no-display); without a "
            "display the annotated images are saved to --output or output/. "
            "Exit status: 0 all images done, 1 some inputs failed (reported, the rest processed), 2 nothing "
            "could be processed (bad input or model)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", nargs="+", metavar="PATH", help="image files and/or folders of images")
    source.add_argument(
        "--demo", action="store_true", help="run on scikit-image's astronaut photo (a real face, no mask)"
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="save the annotated image here (.jpg or .png); a folder when there are several images",
    )
    parser.add_argument("--json", action="store_true", help="JSON Lines on stdout, one object per image")
    parser.add_argument("--no-display", action="store_true", help="never open a window")
    cli.add_pipeline_options(parser, photos=True)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mask_detection.pipeline import detect_images

    return detect_images(
        paths=args.image or (),
        demo=args.demo,
        model_path=args.model,
        output=args.output,
        as_json=args.json,
        display=False if (args.no_display or args.json) else None,
        face_confidence=args.face_confidence,
        mask_threshold=args.mask_threshold,
        detect_size=args.detect_size,
        threads=args.threads,
        upscale=args.upscale,
    )


if __name__ == "__main__":
    cli.run(main)
