package rocketmqtest

// Request codes (RequestCode in the Java broker) the broker implements, for
// [Broker.ControlKey] and the fault helpers.
const (
	CodeSendMessage            int16 = 10
	CodePullMessage            int16 = 11
	CodeQueryConsumerOffset    int16 = 14
	CodeUpdateConsumerOffset   int16 = 15
	CodeUpdateAndCreateTopic   int16 = 17
	CodeSearchOffsetByTime     int16 = 29
	CodeGetMaxOffset           int16 = 30
	CodeGetMinOffset           int16 = 31
	CodeHeartbeat              int16 = 34
	CodeUnregisterClient       int16 = 35
	CodeConsumerSendMsgBack    int16 = 36
	CodeGetConsumerListByGroup int16 = 38
	CodeNotifyConsumerIDs      int16 = 40 // broker to client
	CodeLockBatchMQ            int16 = 41
	CodeUnlockBatchMQ          int16 = 42
	CodeGetRouteInfoByTopic    int16 = 105
	CodeSendMessageV2          int16 = 310
	CodeSendBatchMessage       int16 = 320

	// AnyCode matches every request code in [Broker.ControlKey] and the
	// response fault helpers.
	AnyCode int16 = -1
)

// Response codes (ResponseCode in the Java broker).
const (
	codeSuccess                   int16 = 0
	codeSystemError               int16 = 1
	codeRequestNotSupported       int16 = 3
	codeMessageIllegal            int16 = 13
	codeServiceNotAvailable       int16 = 14
	codeNoPermission              int16 = 16
	codeTopicNotExist             int16 = 17
	codePullNotFound              int16 = 19
	codePullRetryImmediately      int16 = 20
	codePullOffsetMoved           int16 = 21
	codeQueryNotFound             int16 = 22
	codeSubscriptionNotExist      int16 = 24
	codeSubscriptionNotLatest     int16 = 25
	codeSubscriptionGroupNotExist int16 = 26
)

// handler processes a request on the run loop and returns the response, or
// nil when there is none yet (a held pull) or none at all.
type handler func(s *state, in *inbound) *Command

// handlers is filled by the per-code files' init functions.
var handlers = map[int16]handler{}
