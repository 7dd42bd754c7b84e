"""EDF schema: documented items aligned with the phantom, and errors naming row, column, value."""

import csv
import tempfile
import unittest
from pathlib import Path

ISSUE_ITEMS = (
    "age", "sex", "region", "level", "n_involved_vertebrae", "t1_signal", "t2_signal", "stir_signal",
    "fracture", "posterior_element_involvement", "soft_tissue_extension", "extension_type", "margin",
    "pattern", "homogeneity",
)


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


class EDFSchemaTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)

    def test_schema_documents_every_item_and_matches_the_phantom(self):
        from SpineMetsClassifierLib.features.edf import load_schema

        from SpineMetsPhantom import CATEGORICAL_EDF, EDF_ITEMS

        schema = load_schema()
        for name in ISSUE_ITEMS:
            item = schema.item(name)
            self.assertIn(item.type, ("integer", "number", "categorical"))
            self.assertGreater(len(item.meaning), 20, name)
        self.assertIn("FS-T2", schema.item("stir_signal").meaning)
        self.assertEqual(schema.canonical("fs_t2_signal"), "stir_signal")
        for name in EDF_ITEMS:  # every column the phantom writes is a schema item...
            self.assertIn(name, schema.names)
        for name, values in CATEGORICAL_EDF.items():  # ...and every value it writes is allowed
            self.assertLessEqual(set(values), set(schema.item(name).allowed), name)
        self.assertEqual(schema.item("age").describe_allowed(), "a whole number in 0..120 (years)")

    def test_phantom_records_validate_unchanged(self):
        from SpineMetsClassifierLib.features.edf import read_edf_csv

        from SpineMetsPhantom import EDF_ITEMS, sample_records

        records = sample_records(40, seed=4)
        path = write_csv(self.dir / "edf.csv", [{"case_id": r["case_id"], **{k: r[k] for k in EDF_ITEMS}} for r in records])
        rows = read_edf_csv(path)
        for record, row in zip(records, rows, strict=True):
            for name in EDF_ITEMS:
                self.assertEqual(row[name], record[name], name)

    def test_every_bad_cell_is_reported_with_row_column_value_and_allowed_values(self):
        from SpineMetsClassifierLib.features.edf import EDFValidationError, read_edf_csv

        rows = [
            {"case_id": "a", "age": "61", "sex": "F", "T1_signal": "hypo", "fracture": "no", "note": "x"},
            {"case_id": "b", "age": "61.5", "sex": "female", "T1_signal": "bright", "fracture": "yes", "note": "y"},
            {"case_id": "c", "age": "130", "sex": "M", "T1_signal": "ISO", "fracture": "", "note": "z"},
        ]
        path = write_csv(self.dir / "bad.csv", rows)
        with self.assertRaises(EDFValidationError) as ctx:
            read_edf_csv(path)
        problems = ctx.exception.problems
        found = {(p.row, p.case_id, p.column, p.value) for p in problems}
        self.assertEqual(found, {(2, "b", "age", "61.5"), (2, "b", "sex", "female"), (2, "b", "T1_signal", "bright"),
                                 (3, "c", "age", "130")})
        message = str(ctx.exception)
        self.assertIn(str(path), message)
        self.assertIn("4 invalid EDF cell(s)", message)
        self.assertIn("row 2 (case 'b'), column 'sex': value 'female' is not allowed; allowed: F, M", message)
        self.assertIn("column 'T1_signal': value 'bright' is not allowed; allowed: hypo, iso, hyper, none", message)
        self.assertIn("value '130' is not allowed; allowed: a whole number in 0..120 (years)", message)

    def test_values_are_normalised_and_missing_cells_kept_missing(self):
        from SpineMetsClassifierLib.features.edf import check_records

        clean = check_records([
            {"case_id": "a", "AGE": "59.0", "Sex": "m", "fs_t2_signal": "HYPER", "fracture": "NA", "site": "lung"},
        ])[0]
        self.assertEqual(clean, {"case_id": "a", "age": 59, "sex": "M", "stir_signal": "hyper", "fracture": None,
                                 "site": "lung"})
        self.assertIsInstance(clean["age"], int)

    def test_required_items_and_duplicates(self):
        from SpineMetsClassifierLib.features.edf import EDFValidationError, check_records, read_edf_csv

        from SpineMetsCore.errors import InputError

        with self.assertRaises(EDFValidationError) as ctx:
            check_records([{"case_id": "a", "age": ""}], required=("age",))
        self.assertIn("row 1 (case 'a'), column 'age'", str(ctx.exception))
        with self.assertRaises(InputError) as ctx:
            check_records([{"case_id": "a", "stir_signal": "hyper", "fs_t2_signal": "iso"}])
        self.assertIn("columns 'stir_signal' and 'fs_t2_signal'", str(ctx.exception))
        path = write_csv(self.dir / "dup.csv", [{"case_id": "a", "age": "1"}, {"case_id": "a", "age": "2"}])
        with self.assertRaises(InputError) as ctx:
            read_edf_csv(path)
        self.assertIn("duplicate case_id", str(ctx.exception))

    def test_schema_file_errors_name_file_and_item(self):
        from SpineMetsClassifierLib.features.edf import load_schema

        from SpineMetsCore.errors import InputError

        path = self.dir / "schema.yaml"
        path.write_text("items:\n  - name: grade\n    type: categorical\n    meaning: Tumour grade as reported.\n")
        with self.assertRaises(InputError) as ctx:
            load_schema(path)
        self.assertIn("item 'grade'", str(ctx.exception))
        self.assertIn("needs 'allowed' values", str(ctx.exception))

    def test_module_form_values(self):
        from SpineMetsClassifierLib.features.edf import EDFValidationError
        from SpineMetsClassifierLib.logic.cohort import EDF_FORM_FIELDS, CohortLogic

        from SpineMetsCore.conventions import EDF_ITEMS

        self.assertEqual(set(EDF_ITEMS), set(EDF_FORM_FIELDS))
        logic = CohortLogic()
        record = logic.edfFromForm({"edfAge": -1, "edfSex": "F", "edfT1Signal": "", "edfFracture": "yes", "edfLevel": "L3"})
        self.assertEqual(record, {"age": None, "sex": "F", "t1_signal": None, "fracture": "yes", "level": "L3"})
        with self.assertRaises(EDFValidationError) as ctx:
            logic.edfFromForm({"edfLevel": "L9"})
        self.assertIn("EDF form: 1 invalid EDF cell(s): row 1, column 'level': value 'L9'", str(ctx.exception))

    def test_module_ui_offers_exactly_the_schema_values(self):
        """The form's combo boxes get their items from the schema (Choice annotations)."""
        import ast

        from SpineMetsClassifierLib.logic.cohort import EDF_FORM_FIELDS

        module = Path(__file__).resolve().parents[2] / "SpineMetsClassifier.py"
        tree = ast.parse(module.read_text())
        wrapper = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SpineMetsClassifierParameterNode")
        fields = {n.target.id: ast.unparse(n.annotation) for n in wrapper.body if isinstance(n, ast.AnnAssign)}
        for item, name in EDF_FORM_FIELDS.items():
            self.assertIn(name, fields)
            if item not in ("age", "n_involved_vertebrae"):
                self.assertIn(f"_edfChoices('{item}')", fields[name])


if __name__ == "__main__":
    unittest.main()
