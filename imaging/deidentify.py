"""De-identify uploaded DICOM files before anything is written (DICOM PS3.15 Annex E basic profile, via dicognito).

Pure Python (no Django, no torch). Names, IDs, addresses and institutions are replaced by dicognito; descriptions,
comments and other free text (the basic profile without the Clean Descriptors option), identifying sequences,
private tags, overlays and curves are removed; dates are shifted and UIDs remapped with a seed
derived from the organisation's salt, so the same input gives the same output within one organisation (a series
uploaded in two batches stays one series) and different output in another. Pixel data and the attributes the model
and the viewer need (geometry, bits, photometric, rescale, window, spacing, modality, instance number, position) are
kept untouched. Burned-in text in the pixels is not removed: `identity_removed` is False when the file says it has
any, and the upload service refuses such files.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import logging
from dataclasses import dataclass, field
from typing import Any

from imaging.decoding import DicomInfo, ImageDecodeError, dicom_info_from_dataset, display_name

logger = logging.getLogger(__name__)

DEIDENTIFICATION_METHOD = "DICOGNITO PS3.15 basic; no private tags; per-org UIDs+dates"  # LO: at most 64 chars
# PS3.15 Table E.1-1 attributes that the basic profile removes (X, or X/Z, X/D where the attribute is optional) and
# dicognito does not replace: identifying sequences, patient details, locations, signatures and original values.
# Patient sex, age, size and weight stay (Retain Patient Characteristics option).
_IDENTIFYING_KEYWORDS: frozenset[str] = frozenset(
    {
        "AcquisitionContextSequence", "ActualHumanPerformersSequence", "AdmissionID", "AdmittingDate",
        "AdmittingDiagnosesCodeSequence", "AdmittingTime", "Allergies", "AuthorObserverSequence", "BranchOfService",
        "CassetteID", "ContentCreatorIdentificationCodeSequence", "ContentSequence", "CountryOfResidence",
        "CurrentPatientLocation", "CustodialOrganizationSequence", "DataSetTrailingPadding", "DetectorID",
        "DeviceSerialNumber", "DigitalSignatureUID", "DigitalSignaturesSequence", "DistributionAddress",
        "DistributionName", "EthnicGroup", "GantryID", "GeneratorID", "HumanPerformerOrganization",
        "IconImageSequence", "InstitutionAddress", "InstitutionCodeSequence", "InstitutionalDepartmentName",
        "InsurancePlanIdentification", "IntendedRecipientsOfResultsIdentificationSequence",
        "InterpretationApproverSequence", "InterpretationAuthor", "InterpretationIDIssuer", "InterpretationRecorder",
        "InterpretationTranscriber", "IssuerOfAdmissionID", "IssuerOfAdmissionIDSequence", "IssuerOfPatientID",
        "IssuerOfServiceEpisodeID", "IssuerOfServiceEpisodeIDSequence", "LastMenstrualDate", "MAC",
        "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence", "ModifyingDeviceID",
        "ModifyingDeviceManufacturer", "NamesOfIntendedRecipientsOfResults", "Occupation",
        "OrderCallbackPhoneNumber", "OrderEnteredBy", "OrderEntererLocation", "OriginalAttributesSequence",
        "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "ParticipantSequence", "PatientAddress",
        "PatientBirthName", "PatientBirthTime", "PatientInstitutionResidence", "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName", "PatientPrimaryLanguageCodeSequence", "PatientPrimaryLanguageModifierCodeSequence",
        "PatientReligiousPreference", "PatientTelecomInformation", "PatientTelephoneNumbers",
        "PatientTransportArrangements", "PerformedLocation", "PerformedStationAETitle",
        "PerformedStationGeographicLocationCodeSequence", "PerformedStationName", "PerformedStationNameCodeSequence",
        "PerformingPhysicianIdentificationSequence", "PersonAddress", "PersonTelephoneNumbers",
        "PhysicianApprovingInterpretation", "PhysiciansOfRecordIdentificationSequence",
        "PhysiciansReadingStudyIdentificationSequence", "PlateID", "ReferencedDigitalSignatureSequence",
        "ReferencedPatientAliasSequence", "ReferencedPatientPhotoSequence", "ReferencedPatientSequence",
        "ReferencedPerformedProcedureStepSequence", "ReferencedSOPInstanceMACSequence",
        "ReferringPhysicianAddress", "ReferringPhysicianIdentificationSequence", "ReferringPhysicianTelephoneNumbers",
        "RegionOfResidence", "RequestAttributesSequence", "RequestedProcedureLocation",
        "RequestingPhysicianIdentificationSequence", "ResponsibleOrganization", "ResponsiblePerson",
        "ResultsDistributionListSequence", "ResultsIDIssuer", "ScheduledHumanPerformersSequence",
        "ScheduledPatientInstitutionResidence", "ScheduledPerformingPhysicianIdentificationSequence",
        "ScheduledProcedureStepLocation", "ScheduledStationAETitle", "ScheduledStationGeographicLocationCodeSequence",
        "ScheduledStationName", "ScheduledStationNameCodeSequence", "ScheduledStudyLocation",
        "ScheduledStudyLocationAETitle", "ServiceEpisodeID", "StudyIDIssuer", "TimezoneOffsetFromUTC",
        "VerifyingOrganization",
    }
)
# Descriptions, comments, protocol names and other free text: the basic profile removes them (X, X/Z, X/D) unless
# the Clean Descriptors option is used, which we do not claim; technologists type names, dates of birth and
# histories into them. `_is_free_text` also catches the description/comment attributes not listed here.
_DESCRIPTOR_KEYWORDS: frozenset[str] = frozenset(
    {
        "AcquisitionComments", "AcquisitionContextDescription", "AcquisitionDeviceProcessingDescription",
        "AcquisitionProtocolDescription", "AcquisitionProtocolName", "AdditionalPatientHistory",
        "AdmittingDiagnosesDescription", "AnnotationGroupDescription", "ApplicatorDescription", "BeamDescription",
        "BolusDescription", "ClinicalTrialSeriesDescription", "ClinicalTrialTimePointDescription",
        "CommentsOnThePerformedProcedureStep", "CommentsOnTheScheduledProcedureStep", "CompensatorDescription",
        "ConfidentialityConstraintOnPatientDataDescription", "ContentDescription", "ContributionDescription",
        "DerivationDescription", "DeviceDescription", "DischargeDiagnosisDescription", "DoseReferenceDescription",
        "FixationDeviceDescription", "FractionGroupDescription", "FrameComments", "IdentifyingComments",
        "ImageComments", "ImagePresentationComments", "ImagingServiceRequestComments", "Impressions",
        "InterpretationDiagnosisDescription", "InterpretationText", "InterventionDescription", "LabelText",
        "LongDeviceDescription", "ModifiedImageDescription", "PatientComments", "PatientState",
        "PerformedProcedureStepDescription", "PreMedication", "PrescriptionDescription", "ProtocolName",
        "ReasonForStudy", "ReasonForTheImagingServiceRequest", "ReasonForTheRequestedProcedure", "ReasonForVisit",
        "RequestedContrastAgent", "RequestedProcedureComments", "RequestedProcedureDescription",
        "RequestedSeriesDescription", "RespiratoryMotionCompensationTechniqueDescription", "ResultsComments",
        "RTPlanDescription", "RTPlanName", "ScheduledProcedureStepDescription", "SeriesDescription",
        "ServiceEpisodeDescription", "SetupTechniqueDescription", "ShieldingDeviceDescription", "SpecialNeeds",
        "SpecimenDetailedDescription", "SpecimenShortDescription", "StructureSetDescription", "StructureSetName",
        "StudyComments", "StudyDescription", "TextComments", "TextString", "TextValue", "TopicAuthor",
        "TopicKeywords", "TopicSubject", "TopicTitle", "TreatmentSite", "UnformattedTextValue", "VisitComments",
    }
)
_REMOVE_KEYWORDS: frozenset[str] = _IDENTIFYING_KEYWORDS | _DESCRIPTOR_KEYWORDS
_FREE_TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "UC"})
_FREE_TEXT_SUFFIXES = ("Description", "Comments", "Comment")
_BLANK_KEYWORDS = ("PatientBirthDate",)  # Z (zero length) in PS3.15: the attribute stays, the value goes
_REMOVE_GROUPS = (0x5000, 0x6000)  # curves and overlays can carry burned-in names; drop the repeating groups
_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    ("113108", "Retain Patient Characteristics Option"),
)


@dataclass(frozen=True, slots=True)
class DeidentifiedDicom:
    """The de-identified file, its header info (taken after de-identification) and what was removed or replaced."""

    data: bytes
    info: DicomInfo
    removed: list[str] = field(default_factory=list)  # keywords, or "(gggg,eeee)" for private/unknown tags
    replaced: list[str] = field(default_factory=list)  # top-level keywords whose value changed
    identity_removed: bool = True  # False when BurnedInAnnotation is YES: names may be in the pixels


def deidentify_dicom(*, data: bytes, organization_salt: str, filename: str = "upload.dcm") -> DeidentifiedDicom:
    """Return a de-identified copy of the DICOM file `data`, remapped consistently for one organisation.

    `organization_salt` is a per-organisation secret (never shown to users); it seeds UID remapping, pseudonyms and
    the date shift. Raises ImageDecodeError when the file cannot be read or de-identified; never returns
    partially de-identified data.
    """
    if not organization_salt:
        raise ValueError("organization_salt must be a non-empty per-organisation secret")
    import pydicom

    name = display_name(filename)
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # hostile bytes make pydicom raise many types; the user needs one message
        logger.info("pydicom could not read an uploaded DICOM file", exc_info=True)  # no file name: it may be PHI
        raise ImageDecodeError(
            f"{name}: DICOM file is truncated or corrupt and cannot be read; export it again and re-upload.",
            code="corrupt",
        ) from exc
    try:
        if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
            raise ImageDecodeError(
                f"{name}: DICOM file has no SOP Class/Instance UID, so it is not a valid DICOM object; "
                "export it again from the PACS or modality.",
                code="corrupt",
            )
        before = {elem.keyword: elem.value for elem in ds if elem.keyword and elem.VR != "SQ"}
        removed = _strip(ds)
        _anonymizer(organization_salt).anonymize(ds)
        identity_removed = str(ds.get("BurnedInAnnotation", "")).upper() != "YES"
        _mark(ds, identity_removed=identity_removed)
        _rebuild_file_meta(ds)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out = buf.getvalue()
        info = dicom_info_from_dataset(ds)
    except ImageDecodeError:
        raise
    except Exception as exc:  # any failure here must stop the upload: nothing half de-identified may be stored
        logger.info("Could not de-identify an uploaded DICOM file", exc_info=True)
        raise ImageDecodeError(
            f"{name}: DICOM file could not be de-identified (malformed header); export it again and re-upload.",
            code="deidentification_failed",
        ) from exc
    replaced = sorted(k for k, v in before.items() if k in ds and ds[k].value != v and k not in removed)
    return DeidentifiedDicom(data=out, info=info, removed=removed, replaced=replaced, identity_removed=identity_removed)


def _strip(ds: Any) -> list[str]:
    """Remove private, unknown, free-text and overlay/curve elements (recursively); blank Z attributes."""
    removed: set[str] = set()

    def visit(dataset: Any) -> None:
        for elem in list(dataset):
            tag = elem.tag
            keyword = elem.keyword
            if (tag.is_private or not keyword or keyword in _REMOVE_KEYWORDS or _is_free_text(keyword, elem.VR)
                    or (tag.group & 0xFF00) in _REMOVE_GROUPS):
                removed.add(keyword or str(tag))
                del dataset[tag]
            elif keyword in _BLANK_KEYWORDS and elem.value:
                removed.add(keyword)
                elem.value = ""
            elif elem.VR == "SQ":
                for item in elem.value:
                    visit(item)

    visit(ds)
    for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "PrivateInformation"):
        if keyword in ds.file_meta:
            removed.add(keyword)
            del ds.file_meta[keyword]
    return sorted(removed)


def _is_free_text(keyword: str, vr: str) -> bool:
    """A description or comment attribute: free text, whichever IOD (and whichever edition of the table) it is from."""
    return vr in _FREE_TEXT_VRS and keyword.endswith(_FREE_TEXT_SUFFIXES)


def _anonymizer(salt: str) -> Any:
    from dicognito.anonymizer import Anonymizer
    from dicognito.datetimeanonymizer import DateTimeAnonymizer

    # Hash the salt so the secret itself never feeds a seed that an output value might expose.
    seed = hashlib.sha256(b"lumen-dicom-deid\x00" + salt.encode("utf-8")).hexdigest()
    anonymizer = Anonymizer(seed=seed)
    # Whole days (62-730 back), unlike dicognito's hour offset, so study and series dates of one file stay equal.
    days = int(hashlib.sha256(f"{seed}:date-shift".encode()).hexdigest(), 16) % (730 - 62) + 62
    anonymizer.add_element_handler(DateTimeAnonymizer(-days * 24))
    anonymizer.add_element_handler(_MalformedDateBlanker())  # runs first: handlers added later go in front
    return anonymizer


class _MalformedDateBlanker:
    """dicognito's date shift raises on malformed DA/DT (and paired TM) values; blank those instead of failing."""

    def __call__(self, dataset: Any, data_element: Any) -> bool:
        if data_element.VR not in ("DA", "DT") or not data_element.value:
            return False
        time_keyword = data_element.keyword.replace("Date", "Time") if data_element.VR == "DA" else ""
        time_element = dataset.data_element(time_keyword) if time_keyword and time_keyword in dataset else None
        times = _as_list(time_element.value if time_element is not None else "")
        dates = _as_list(data_element.value)
        try:
            for index, date in enumerate(dates):
                time = times[index] if index < len(times) else ""
                stamp = (date.replace(".", "") + time.replace(":", ""))[:10]  # what dicognito parses
                datetime.datetime.strptime(stamp, "%Y%m%d%H"[: max(len(stamp) - 2, 0)])  # noqa: DTZ007
        except ValueError:
            data_element.value = ""
            if time_element is not None:
                time_element.value = ""
            return True
        return False

    def describe_actions(self) -> Any:
        yield "Blank DA and DT elements (and paired TM) whose value is not a valid date"


def _as_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) or hasattr(value, "append") else [str(value)]


def _mark(ds: Any, *, identity_removed: bool) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.PatientIdentityRemoved = "YES" if identity_removed else "NO"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    codes = []
    for value, meaning in _METHOD_CODES:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = "MODIFIED"


def _rebuild_file_meta(ds: Any) -> None:
    from pydicom.dataset import FileMetaDataset

    # A fresh meta header drops implementation names and AE titles that could name the sending site.
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ds.file_meta.get("TransferSyntaxUID") or _guess_transfer_syntax(ds)
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def _guess_transfer_syntax(ds: Any) -> str:
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    return ImplicitVRLittleEndian if ds.original_encoding[0] else ExplicitVRLittleEndian
