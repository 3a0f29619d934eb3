"""The code pages of Exchange ActiveSync's WBXML (MS-ASWBXML): page number -> its name and
tag names by token.  Each page is written as its first token and the tag names from there
on, one per token; "-" marks a token the page does not define."""

from __future__ import annotations

# (page name, first token, tag names)
PAGES: list[tuple[str, int, str]] = [
    ("airsync", 0x05, (
        "Sync Responses Add Change Delete Fetch SyncKey ClientId ServerId Status Collection "
        "Class - CollectionId GetChanges MoreAvailable WindowSize Commands Options FilterType "
        "- - Conflict Collections ApplicationData DeletesAsMoves - Supported SoftDelete "
        "MIMESupport MIMETruncation Wait Limit Partial ConversationMode MaxItems "
        "HeartbeatInterval"
    )),
    ("contacts", 0x05, (
        "Anniversary AssistantName AssistantTelephoneNumber Birthday - - - "
        "Business2PhoneNumber BusinessCity BusinessCountry BusinessPostalCode BusinessState "
        "BusinessStreet BusinessFaxNumber BusinessPhoneNumber CarPhoneNumber Categories "
        "Category Children Child CompanyName Department Email1Address Email2Address "
        "Email3Address FileAs FirstName Home2PhoneNumber HomeCity HomeCountry HomePostalCode "
        "HomeState HomeStreet HomeFaxNumber HomePhoneNumber JobTitle LastName MiddleName "
        "MobilePhoneNumber OfficeLocation OtherCity OtherCountry OtherPostalCode OtherState "
        "OtherStreet PagerNumber RadioPhoneNumber Spouse Suffix Title Webpage YomiCompanyName "
        "YomiFirstName YomiLastName - Picture Alias WeightedRank"
    )),
    ("email", 0x0F, (
        "DateReceived - DisplayTo Importance MessageClass Subject Read To CC From ReplyTo "
        "AllDayEvent Categories Category DTStamp EndTime InstanceType BusyStatus Location "
        "MeetingRequest Organizer RecurrenceId Reminder ResponseRequested Recurrences "
        "Recurrence Recurrence_Type Recurrence_Until Recurrence_Occurrences "
        "Recurrence_Interval Recurrence_DayOfWeek Recurrence_DayOfMonth "
        "Recurrence_WeekOfMonth Recurrence_MonthOfYear StartTime Sensitivity TimeZone "
        "GlobalObjId ThreadTopic - - - InternetCPID Flag FlagStatus ContentClass FlagType "
        "CompleteTime DisallowNewTimeProposal"
    )),
    ("", 0x05, ""),
    ("calendar", 0x05, (
        "TimeZone AllDayEvent Attendees Attendee Attendee_Email Attendee_Name - - BusyStatus "
        "Categories Category - DTStamp EndTime Exception Exceptions Exception_Deleted "
        "Exception_StartTime Location MeetingStatus Organizer_Email Organizer_Name Recurrence "
        "Recurrence_Type Recurrence_Until Recurrence_Occurrences Recurrence_Interval "
        "Recurrence_DayOfWeek Recurrence_DayOfMonth Recurrence_WeekOfMonth "
        "Recurrence_MonthOfYear Reminder Sensitivity Subject StartTime UID Attendee_Status "
        "Attendee_Type - - - - - - - - DisallowNewTimeProposal ResponseRequested "
        "AppointmentReplyTime ResponseType CalendarType IsLeapMonth FirstDayOfWeek "
        "OnlineMeetingConfLink OnlineMeetingExternalLink"
    )),
    ("move", 0x05, (
        "MoveItems Move SrcMsgId SrcFldId DstFldId Response Status DstMsgId"
    )),
    ("getitemestimate", 0x05, (
        "GetItemEstimate Version Collections Collection Class CollectionId DateTime Estimate "
        "Response Status"
    )),
    ("folderhierarchy", 0x07, (
        "DisplayName ServerId ParentId Type - Status - Changes Add Delete Update SyncKey "
        "FolderCreate FolderDelete FolderUpdate FolderSync Count"
    )),
    ("meetingresponse", 0x05, (
        "CalendarId CollectionId MeetingResponse RequestId Request Result Status UserResponse "
        "- InstanceId"
    )),
    ("tasks", 0x08, (
        "Categories Category Complete DateCompleted DueDate UTCDueDate Importance Recurrence "
        "Recurrence_Type Recurrence_Start Recurrence_Until Recurrence_Occurrences "
        "Recurrence_Interval Recurrence_DayOfMonth Recurrence_DayOfWeek "
        "Recurrence_WeekOfMonth Recurrence_MonthOfYear Recurrence_Regenerate "
        "Recurrence_DeadOccur ReminderSet ReminderTime Sensitivity StartDate UTCStartDate "
        "Subject - OrdinalDate SubOrdinalDate CalendarType IsLeapMonth FirstDayOfWeek"
    )),
    ("resolverecipients", 0x05, (
        "ResolveRecipients Response Status Type Recipient DisplayName EmailAddress "
        "Certificates Certificate MiniCertificate Options To CertificateRetrieval "
        "RecipientCount MaxCertificates MaxAmbiguousRecipients CertificateCount Availability "
        "StartTime EndTime MergedFreeBusy Picture MaxSize Data MaxPictures"
    )),
    ("validatecert", 0x05, (
        "ValidateCert Certificates Certificate CertificateChain CheckCRL Status"
    )),
    ("contacts2", 0x05, (
        "CustomerId GovernmentId IMAddress IMAddress2 IMAddress3 ManagerName CompanyMainPhone "
        "AccountName NickName MMS"
    )),
    ("ping", 0x05, (
        "Ping AutdState Status HeartbeatInterval Folders Folder Id Class MaxFolders"
    )),
    ("provision", 0x05, (
        "Provision Policies Policy PolicyType PolicyKey Data Status RemoteWipe "
        "EASProvisionDoc DevicePasswordEnabled AlphanumericDevicePasswordRequired "
        "RequireStorageCardEncryption PasswordRecoveryEnabled - AttachmentsEnabled "
        "MinDevicePasswordLength MaxInactivityTimeDeviceLock MaxDevicePasswordFailedAttempts "
        "MaxAttachmentSize AllowSimpleDevicePassword DevicePasswordExpiration "
        "DevicePasswordHistory AllowStorageCard AllowCamera RequireDeviceEncryption "
        "AllowUnsignedApplications AllowUnsignedInstallationPackages "
        "MinDevicePasswordComplexCharacters AllowWiFi AllowTextMessaging AllowPOPIMAPEmail "
        "AllowBluetooth AllowIrDA RequireManualSyncWhenRoaming AllowDesktopSync "
        "MaxCalendarAgeFilter AllowHTMLEmail MaxEmailAgeFilter MaxEmailBodyTruncationSize "
        "MaxEmailHTMLBodyTruncationSize RequireSignedSMIMEMessages "
        "RequireEncryptedSMIMEMessages RequireSignedSMIMEAlgorithm "
        "RequireEncryptionSMIMEAlgorithm AllowSMIMEEncryptionAlgorithmNegotiation "
        "AllowSMIMESoftCerts AllowBrowser AllowConsumerEmail AllowRemoteDesktop "
        "AllowInternetSharing UnapprovedInROMApplicationList ApplicationName "
        "ApprovedApplicationList Hash"
    )),
    ("search", 0x05, (
        "Search - Store Name Query Options Range Status Response Result Properties Total "
        "EqualTo Value And Or FreeText - DeepTraversal LongId RebuildResults LessThan "
        "GreaterThan - - UserName Password ConversationId Picture MaxSize MaxPictures"
    )),
    ("gal", 0x05, (
        "DisplayName Phone Office Title Company Alias FirstName LastName HomePhone "
        "MobilePhone EmailAddress Picture Status Data"
    )),
    ("airsyncbase", 0x05, (
        "BodyPreference Type TruncationSize AllOrNone - Body Data EstimatedDataSize Truncated "
        "Attachments Attachment DisplayName FileReference Method ContentId ContentLocation "
        "IsInline NativeBodyType ContentType Preview BodyPartPreference BodyPart Status"
    )),
    ("settings", 0x05, (
        "Settings Status Get Set Oof OofState StartTime EndTime OofMessage AppliesToInternal "
        "AppliesToExternalKnown AppliesToExternalUnknown Enabled ReplyMessage BodyType "
        "DevicePassword Password DeviceInformation Model IMEI FriendlyName OS OSLanguage "
        "PhoneNumber UserInformation EmailAddresses SmtpAddress UserAgent EnableOutboundSMS "
        "MobileOperator PrimarySmtpAddress Accounts Account AccountId AccountName "
        "UserDisplayName SendDisabled - RightsManagementInformation"
    )),
    ("documentlibrary", 0x05, (
        "LinkId DisplayName IsFolder CreationDate LastModifiedDate IsHidden ContentLength "
        "ContentType"
    )),
    ("itemoperations", 0x05, (
        "ItemOperations Fetch Store Options Range Total Properties Data Status Response "
        "Version Schema Part EmptyFolderContents DeleteSubFolders UserName Password Move "
        "DstFldId ConversationId MoveAlways"
    )),
    ("composemail", 0x05, (
        "SendMail SmartForward SmartReply SaveInSentItems ReplaceMime - Source FolderId "
        "ItemId LongId InstanceId MIME ClientId Status AccountId"
    )),
    ("email2", 0x05, (
        "UmCallerID UmUserNotes UmAttDuration UmAttOrder ConversationId ConversationIndex "
        "LastVerbExecuted LastVerbExecutionTime ReceivedAsBcc Sender CalendarType IsLeapMonth "
        "AccountId FirstDayOfWeek MeetingMessageType"
    )),
    ("notes", 0x05, (
        "Subject MessageClass LastModifiedDate Categories Category"
    )),
    ("rightsmanagement", 0x05, (
        "RightsManagementSupport RightsManagementTemplates RightsManagementTemplate "
        "RightsManagementLicense EditAllowed ReplyAllowed ReplyAllAllowed ForwardAllowed "
        "ModifyRecipientsAllowed ExtractAllowed PrintAllowed ExportAllowed "
        "ProgrammaticAccessAllowed RMOwner ContentExpiryDate TemplateID TemplateName "
        "TemplateDescription ContentOwner RemoveRightsManagementDistribution"
    )),
]


def tag_table() -> list[dict[int, str]]:
    """Per page: token -> tag name."""
    tables = []
    for _, first, names in PAGES:
        tables.append({first + i: name for i, name in enumerate(names.split()) if name != "-"})
    return tables
